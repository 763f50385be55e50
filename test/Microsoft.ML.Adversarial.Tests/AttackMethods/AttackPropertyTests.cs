using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>Properties that follow from each method's definition, checked on a small CNN trained on real Fashion-MNIST.</summary>
[TestClass]
public sealed class AttackPropertyTests
{
    private static nn.Module<Tensor, Tensor> Model => TrainedModels.SmallCnn;

    [TestMethod]
    public void TheTrainedModelIsAReasonableClassifier()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch();
        Assert.IsTrue(TrainedModels.Accuracy(Model, x, y) > 0.7, "the fixture model must be worth attacking");
    }

    [TestMethod]
    public void EveryMethodStaysInTheEpsilonBallAndTheValidRange()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(64);
        foreach (string name in AttackRegistry.Names)
        {
            foreach (double eps in new[] { 2.0, 16.0 })
            {
                var attack = AttackRegistry.Create(name, AutoAttackTests.CiBudget(name, new AttackOptions { Epsilon = eps, Seed = 1 }));
                var adv = attack.Generate(Model, x, y);
                CollectionAssert.AreEqual(x.shape, adv.shape, name);
                float maxChange = (adv - x).abs().max().item<float>() * 255;
                Assert.IsTrue(maxChange <= eps + 1e-3, $"{name} eps {eps}: max change {maxChange} pixel values");
                Assert.IsTrue(adv.min().item<float>() >= 0 && adv.max().item<float>() <= 1, $"{name} left [0, 1]");
                // FAB-T returns the smallest perturbation it finds (or the clean image), not one of size eps.
                if (!AttackRegistry.Describe(name).IsRandomBaseline && !name.EndsWith("l2") && attack is not Fab)
                    Assert.IsTrue(maxChange > eps * 0.5, $"{name} eps {eps} barely moved (max change {maxChange})");
            }
        }
    }

    [TestMethod]
    public void StepLeastLikelyRaisesTheLeastLikelyClassProbability()
    {
        using var scope = NewDisposeScope();
        var (x, _) = TrainedModels.EvalBatch();
        using var noGrad = no_grad();
        var clean = F.softmax(Model.call(x), 1);
        var ll = clean.argmin(1).unsqueeze(1);
        var adv = Attacks.StepLL(eps: 8).Generate(Model, x);
        var after = F.softmax(Model.call(adv), 1);
        var before = clean.gather(1, ll).squeeze(1);
        var raised = after.gather(1, ll).squeeze(1) > before;
        double fraction = raised.to(ScalarType.Float64).mean().item<double>();
        Assert.IsTrue(fraction > 0.95, $"only {fraction:P0} of examples gained least-likely probability");
    }

    [TestMethod]
    public void FgsmRaisesTheLossAndIterativeMethodsFoolAtLeastAsOftenAsOneStep()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch();
        using (no_grad())
        {
            // To first order a small step along the gradient's sign raises each example's loss.
            var fgsm = Attacks.Fgsm(eps: 2).Generate(Model, x, y);
            var cleanLoss = F.cross_entropy(Model.call(x), y, reduction: nn.Reduction.None);
            var advLoss = F.cross_entropy(Model.call(fgsm), y, reduction: nn.Reduction.None);
            double raised = (advLoss > cleanLoss).to(ScalarType.Float64).mean().item<double>();
            Assert.IsTrue(raised > 0.95, $"FGSM raised the loss of only {raised:P0} of examples");
            Assert.IsTrue(advLoss.mean().item<float>() > cleanLoss.mean().item<float>());
        }
        foreach (double eps in new[] { 2.0, 8.0 })
        {
            double fgsmAcc = TrainedModels.Accuracy(Model, Attacks.Fgsm(eps).Generate(Model, x, y), y);
            double iterAcc = TrainedModels.Accuracy(Model, Attacks.IterBasic(eps).Generate(Model, x, y), y);
            Assert.IsTrue(iterAcc <= fgsmAcc, $"eps {eps}: iter. basic accuracy {iterAcc} above FGSM's {fgsmAcc}");

            using var noGrad = no_grad();
            var ll = Model.call(x).argmin(1);
            double stepHits = Model.call(Attacks.StepLL(eps).Generate(Model, x)).argmax(1).eq(ll).to(ScalarType.Float64).mean().item<double>();
            double iterHits = Model.call(Attacks.IterLL(eps).Generate(Model, x)).argmax(1).eq(ll).to(ScalarType.Float64).mean().item<double>();
            Assert.IsTrue(iterHits >= stepHits, $"eps {eps}: iter. l.l. reaches the target for {iterHits:P0}, step l.l. for {stepHits:P0}");
        }
    }

    [TestMethod]
    public void RandomPerturbationsHurtFarLessThanFgsm()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch();
        double clean = TrainedModels.Accuracy(Model, x, y);
        double fgsm = TrainedModels.Accuracy(Model, Attacks.Fgsm(16).Generate(Model, x, y), y);
        foreach (var noise in new Attack[] { Attacks.RandomSign(16, seed: 3), Attacks.TruncatedNormal(16, seed: 3) })
        {
            double acc = TrainedModels.Accuracy(Model, noise.Generate(Model, x, y), y);
            Assert.IsTrue(clean - acc < 0.3 * (clean - fgsm), $"{noise.Name}: drop {clean - acc:F3} vs FGSM's {clean - fgsm:F3}");
        }
    }

    [TestMethod]
    public void PgdIsAtLeastAsStrongAsBasicIterative()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(128);
        double iter = TrainedModels.Accuracy(Model, Attacks.IterBasic(4).Generate(Model, x, y), y);
        double pgd = TrainedModels.Accuracy(Model, Attacks.Pgd(4, steps: 10, restarts: 2, seed: 1).Generate(Model, x, y), y);
        Assert.IsTrue(pgd <= iter + 0.02, $"PGD accuracy {pgd} vs iter. basic {iter}");
        var l2 = Attacks.Pgd(64, PgdNorm.L2, seed: 1).Generate(Model, x, y);
        var norms = AttackBatch.L2Norm((l2 - x) * 255);
        Assert.IsTrue(norms.max().item<float>() <= 64 + 1e-2, "PGD L2 stays in the L2 ball");
        Assert.IsTrue(TrainedModels.Accuracy(Model, l2, y) < TrainedModels.Accuracy(Model, x, y));
    }

    [TestMethod]
    public void PerExampleEpsilonIsHonouredRowByRow()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(6);
        var eps = tensor(new float[] { 0, 1, 2, 4, 8, 16 });
        foreach (string name in new[] { "fgsm", "step-ll", "iter-ll", "iter-basic", "random-sign", "pgd-linf" })
        {
            var attack = AttackRegistry.Create(name, new AttackOptions { Seed = 4 });
            var adv = attack.Generate(Model, x, y, eps);
            for (int i = 0; i < 6; i++)
            {
                float e = eps[i].item<float>();
                float change = (adv[i] - x[i]).abs().max().item<float>() * 255;
                Assert.IsTrue(change <= e + 1e-3, $"{name} row {i}: change {change} exceeds its eps {e}");
                if (e == 0) Assert.AreEqual(0f, change, $"{name}: eps 0 must leave the row untouched");
            }
            // Each row equals the attack run on that row alone with its scalar epsilon (deterministic methods).
            // Batched and single-row convolutions round differently, so a gradient component near zero may flip
            // sign in some step: allow 1% of pixels to differ.
            if (name is "fgsm" or "step-ll" or "iter-ll" or "iter-basic")
                for (int i = 1; i < 6; i++)
                {
                    var single = AttackRegistry.Create(name, eps[i].item<float>()).Generate(Model, x[i..(i + 1)], y[i..(i + 1)]);
                    double differing = ((single[0] - adv[i]).abs() > 1e-6).to(ScalarType.Float64).mean().item<double>();
                    Assert.IsTrue(differing <= 0.01, $"{name} row {i}: {differing:P1} of pixels differ from a single-row run");
                }
        }
    }

    [TestMethod]
    public void IterationCountFollowsThePaper()
    {
        Assert.AreEqual(2, IterativeAttackOptions.DefaultIterations(2));   // min(6, 2.5)
        Assert.AreEqual(5, IterativeAttackOptions.DefaultIterations(4));   // min(8, 5)
        Assert.AreEqual(10, IterativeAttackOptions.DefaultIterations(8));  // min(12, 10)
        Assert.AreEqual(20, IterativeAttackOptions.DefaultIterations(16)); // min(20, 20)
        Assert.AreEqual(36, IterativeAttackOptions.DefaultIterations(32)); // min(36, 40)
        Assert.AreEqual(1, IterativeAttackOptions.DefaultIterations(0.5)); // at least 1

        // With alpha = 1 and eps 2 the result can differ from the clean image by 2 only after 2 steps.
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(8);
        var one = Attacks.IterBasic(2, iterations: 1).Generate(Model, x, y);
        Assert.AreEqual(1f, (one - x).abs().max().item<float>() * 255, 1e-3);
        var paper = Attacks.IterBasic(2).Generate(Model, x, y);
        Assert.AreEqual(2f, (paper - x).abs().max().item<float>() * 255, 1e-3);
    }

    [TestMethod]
    public void OneGradientServesEveryEpsilon()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(16);
        var fgsm = Attacks.Fgsm();
        var eps = new[] { 2.0, 4.0, 8.0, 16.0 };
        var all = fgsm.GenerateForEpsilons(Model, x, y, eps);
        for (int i = 0; i < eps.Length; i++)
            Assert.IsTrue(all[i].equal(Attacks.Fgsm(eps[i]).Generate(Model, x, y)).all().item<bool>(), $"eps {eps[i]}");
    }

    [TestMethod]
    public void SeededRunsRepeatAndSeedsDiffer()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(16);
        foreach (string name in new[] { "step-rnd", "random-sign", "random-truncnormal", "pgd-linf", "pgd-l2" })
        {
            var a = AttackRegistry.Create(name, new AttackOptions { Seed = 42 }).Generate(Model, x, y);
            var b = AttackRegistry.Create(name, new AttackOptions { Seed = 42 }).Generate(Model, x, y);
            var c = AttackRegistry.Create(name, new AttackOptions { Seed = 43 }).Generate(Model, x, y);
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"{name}: same seed, different output");
            Assert.IsFalse(a.equal(c).all().item<bool>(), $"{name}: different seeds, same output");
        }
    }

    [TestMethod]
    public void ModelModeIsRestoredAndNoParameterGradientIsLeft()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(8);
        var model = new Models.SmallCnn(rho: 0.25, dropout: 0.5);
        model.train();
        foreach (string name in AttackRegistry.Names)
        {
            AttackRegistry.Create(name, AutoAttackTests.CiBudget(name, new AttackOptions { Epsilon = 4, Seed = 1 })).Generate(model, x, y);
            Assert.IsTrue(model.training, $"{name} left the model in eval mode");
            Assert.IsTrue(model.modules().All(m => m.training), $"{name} left a submodule in eval mode");
            Assert.IsTrue(model.parameters().All(p => p.grad is null || p.grad.IsInvalid), $"{name} left gradients on the parameters");
        }
        model.eval();
        Attacks.Fgsm(4).Generate(model, x, y);
        Assert.IsFalse(model.training);
    }

    [TestMethod]
    public void EvalModeIsUsedForGradientsUnlessAskedOtherwise()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(8);
        var model = new Models.SmallCnn(rho: 0.25, dropout: 0.9);
        model.train();
        // With dropout active the gradient is random; in eval mode it is deterministic.
        var a = Attacks.Fgsm(4).Generate(model, x, y);
        var b = Attacks.Fgsm(4).Generate(model, x, y);
        Assert.IsTrue(a.equal(b).all().item<bool>());
        var trainingMode = new Fgsm(new AttackOptions { Epsilon = 4, GradientsInTrainingMode = true });
        manual_seed(1);
        var c = trainingMode.Generate(model, x, y);
        manual_seed(2);
        var d = trainingMode.Generate(model, x, y);
        Assert.IsFalse(c.equal(d).all().item<bool>(), "training-mode gradients should see dropout");
    }

    [TestMethod]
    public void ThousandsOfCallsLeaveNoTensorsBehind()
    {
        var (x, y) = TrainedModels.EvalBatch(4);
        var attacks = new Attack[] { Attacks.Fgsm(4), Attacks.StepLL(4), Attacks.IterLL(2), Attacks.Pgd(2, steps: 2, seed: 1) };
        void Round()
        {
            foreach (var a in attacks)
            {
                using var scope = NewDisposeScope();
                a.Generate(Model, x, y);
            }
        }
        for (int i = 0; i < 20; i++) Round();
        long before = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        for (int i = 0; i < 500; i++) Round();
        long after = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        Assert.IsTrue(after - before <= 0, $"live tensors grew from {before} to {after} over 2,000 attack calls");
        x.Dispose();
        y.Dispose();
    }
}
