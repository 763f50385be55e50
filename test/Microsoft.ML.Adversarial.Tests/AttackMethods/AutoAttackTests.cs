using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>APGD, Square and the AutoAttack ensemble: properties that must hold by construction, on real Fashion-MNIST models.</summary>
[TestClass]
public sealed class AutoAttackTests
{
    private static nn.Module<Tensor, Tensor> Model => TrainedModels.SmallCnn;

    /// <summary>The named method's options with <paramref name="shared"/>'s settings and budgets small enough for CI (registry-wide tests).</summary>
    internal static AttackOptions CiBudget(string name, AttackOptions shared)
    {
        var o = AttackRegistry.OptionsFor(name, shared);
        switch (o)
        {
            case ApgdOptions a: a.Iterations = 10; a.TargetClasses = 2; break;
            case SquareOptions q: q.Queries = 50; break;
            case FabOptions f: f.Iterations = 10; f.TargetClasses = 2; break;
            case AutoAttackOptions e: e.ApgdIterations = 10; e.TargetClasses = 2; e.FabIterations = 10; e.SquareQueries = 50; break;
        }
        return o;
    }

    private static double Accuracy(Tensor adv, Tensor y) => TrainedModels.Accuracy(Model, adv, y);

    private static void AssertInBall(Tensor adv, Tensor x, double eps, string what)
    {
        float maxChange = (adv - x).abs().max().item<float>() * 255;
        Assert.IsTrue(maxChange <= eps + 1e-3, $"{what}: max change {maxChange} > eps {eps}");
        Assert.IsTrue(adv.min().item<float>() >= 0 && adv.max().item<float>() <= 1, $"{what} left [0, 1]");
    }

    [TestMethod]
    public void ApgdBestLossNeverFallsAndTheResultStaysInTheBall()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(32);
        foreach (var loss in new[] { ApgdLoss.CrossEntropy, ApgdLoss.Dlr, ApgdLoss.TargetedDlr })
        {
            var attack = new Apgd(new ApgdOptions { Loss = loss, Epsilon = 2, Iterations = 20, TargetClasses = 1, Seed = 3 });
            var trace = new List<float[]>();
            attack.IterationObserver = (_, best) => trace.Add(best.cpu().data<float>().ToArray());
            var adv = attack.Generate(Model, x, y);
            AssertInBall(adv, x, 2, attack.Name);
            Assert.AreEqual(20, trace.Count, "one trace entry per iteration of the single run");
            for (int i = 1; i < trace.Count; i++)
                for (int j = 0; j < trace[i].Length; j++)
                    Assert.IsTrue(trace[i][j] >= trace[i - 1][j], $"{attack.Name}: best loss of example {j} fell at iteration {i}");
            Assert.IsTrue(trace[^1].Zip(trace[0]).Any(p => p.First > p.Second), $"{attack.Name}: the best loss never rose");
        }
    }

    [TestMethod]
    public void DlrLossesFollowTheirFormulas()
    {
        using var scope = NewDisposeScope();
        var z = tensor(new float[] { 5, 3, 1, 0, -1, /**/ 2, 4, 1, 0.5f, -2 }).view(2, 5);
        var y = tensor(new long[] { 0, 0 });
        var dlr = Apgd.Dlr(z, y).data<float>().ToArray();
        // Correct (y is top): -(5 - 3) / (5 - 1). Wrong: -(2 - 4) / (4 - 1).
        Assert.AreEqual(-0.5, dlr[0], 1e-6);
        Assert.AreEqual(2.0 / 3, dlr[1], 1e-6);
        var t = Apgd.TargetedDlr(z, y, tensor(new long[] { 2, 1 })).data<float>().ToArray();
        // -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2): -(5 - 1) / (5 - 0.5); -(2 - 4) / (4 - 0.75).
        Assert.AreEqual(-4 / 4.5, t[0], 1e-6);
        Assert.AreEqual(2 / 3.25, t[1], 1e-6);
        var margin = Square.Margin(z, y).data<float>().ToArray();
        CollectionAssert.AreEqual(new float[] { 2, -2 }, margin);
    }

    [TestMethod]
    public void TargetedApgdReachesItsTargets()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(64);
        var clean = Model.call(x).detach();
        var second = clean.argsort(1, descending: true)[.., 1];
        var adv = new Apgd(new ApgdOptions { Loss = ApgdLoss.TargetedDlr, TargetClasses = 1, Epsilon = 16, Iterations = 20, Seed = 2 }).Generate(Model, x, y);
        var pred = Model.call(adv).detach().argmax(1);
        // Among the examples classified correctly before the attack, those it broke.
        var broken = pred.ne(y).logical_and(clean.argmax(1).eq(y));
        long brokenCount = broken.sum().item<long>();
        Assert.IsTrue(brokenCount >= 5, $"targeted APGD broke only {brokenCount} of 64 at eps 16");
        long onTarget = pred.eq(second).logical_and(broken).sum().item<long>();
        Assert.IsTrue(onTarget >= 0.9 * brokenCount, $"only {onTarget} of {brokenCount} broken examples went to their target (the 2nd most likely class)");
    }

    [TestMethod]
    public void SquareNeverExceedsItsQueryBudgetAndCountsEveryQuery()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(48);
        // A black box: probabilities only, no gradient.
        var blackBox = new ScoreFunctionModel(images => F.softmax(Model.call(images), 1), probabilities: true);
        foreach (var labels in new[] { y, null })
        {
            var square = new Square(new SquareOptions { Epsilon = 16, Queries = 60, Seed = 4 });
            long before = blackBox.Queries;
            var adv = square.Generate(blackBox, x, labels);
            AssertInBall(adv, x, 16, "square");
            Assert.IsTrue(square.LastQueryCounts.All(q => q >= 1 && q <= 60), $"query counts {string.Join(",", square.LastQueryCounts)} outside [1, 60]");
            Assert.AreEqual(blackBox.Queries - before, square.LastQueryCounts.Sum(), "every image the model scored is counted");
            // An example that stopped early is misclassified.
            var wrong = Model.call(adv).detach().argmax(1).ne(y).data<bool>().ToArray();
            var clean = Model.call(x).detach().argmax(1).ne(y).data<bool>().ToArray();
            for (int i = 0; i < 48; i++)
                if (square.LastQueryCounts[i] < 60 && labels is not null) Assert.IsTrue(wrong[i], $"example {i} stopped after {square.LastQueryCounts[i]} queries without being fooled");
            if (labels is not null)
                Assert.IsTrue(wrong.Count(w => w) > clean.Count(w => w), $"square on the black box must fool some examples at eps 16: {wrong.Count(w => w)} wrong vs {clean.Count(w => w)} clean");
        }
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Attacks.Apgd(8).Generate(blackBox, x, y));
        StringAssert.Contains(e.Message, "differentiable");
    }

    [TestMethod]
    public void SquareLeavesExamplesTheModelAlreadyGetsWrongAsTheyAre()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(256);
        // Two queries: the clean prediction and the stripe start. Before the fix the stripes were returned for every
        // example, and some misclassified ones became correct: robust accuracy above clean accuracy.
        var square = new Square(new SquareOptions { Epsilon = 16, Queries = 2, Seed = 5 });
        var adv = square.Generate(Model, x, y);
        using var _ = no_grad();
        var cleanWrong = Model.call(x).argmax(1).ne(y);
        Assert.IsTrue(cleanWrong.sum().item<long>() > 0, "the test needs misclassified examples");
        Assert.AreEqual(0f, adv.index_select(0, cleanWrong.nonzero().squeeze(1)).Minus(x.index_select(0, cleanWrong.nonzero().squeeze(1))).abs().max().item<float>(),
            "a misclassified example is returned unchanged");
        long advRight = Model.call(adv).argmax(1).eq(y).sum().item<long>(), cleanRight = cleanWrong.logical_not().sum().item<long>();
        Assert.IsTrue(advRight <= cleanRight, $"Square: {advRight} right after the attack, {cleanRight} clean");
        Assert.IsTrue(square.LastQueryCounts.All(q => q <= 2), "the clean prediction counts against the budget");
    }

    [TestMethod]
    public void SeededRunsRepeat()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(16);
        foreach (var make in new Func<Attack>[]
        {
            () => new Apgd(new ApgdOptions { Epsilon = 4, Iterations = 10, Seed = 9 }),
            () => new Square(new SquareOptions { Epsilon = 4, Queries = 30, Seed = 9 }),
            () => Quick(4, seed: 9),
        })
        {
            var a = make().Generate(Model, x, y);
            var b = make().Generate(Model, x, y);
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"{make().Name} did not repeat with the same seed");
        }
    }

    private static AutoAttack Quick(double eps, long seed = 5)
        => new(new AutoAttackOptions { Version = AutoAttackVersion.Quick, Epsilon = eps, ApgdIterations = 10, TargetClasses = 2, FabIterations = 10, SquareQueries = 60, Seed = seed });

    [TestMethod]
    public void EnsembleIsTheWorstCaseOfItsComponents()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(48);
        var ensemble = Quick(8);
        var adv = ensemble.Generate(Model, x, y);
        AssertInBall(adv, x, 8, "autoattack");
        double robust = Accuracy(adv, y);
        Assert.AreEqual(4, ensemble.Components.Count);
        foreach (var component in ensemble.Components)
        {
            // Each component alone, fresh, on every example, with the ensemble's settings.
            var alone = AttackRegistry.Create(component.Name, component.Options);
            double own = Accuracy(alone.Generate(Model, x, y), y);
            Assert.IsTrue(robust <= own, $"ensemble {robust} > {component.Name} alone {own}");
        }
        // Each example's result is the first component that broke it, and it really is misclassified.
        var wrong = Model.call(adv).detach().argmax(1).ne(y).data<bool>().ToArray();
        for (int i = 0; i < wrong.Length; i++)
            Assert.AreEqual(wrong[i], ensemble.LastBrokenBy[i] >= 0 || ensemble.LastCleanWrong[i], $"example {i}");
        Assert.IsTrue(ensemble.LastBrokenBy.Count(c => c == 0) > 0, "APGD-CE breaks examples at eps 8");
        Assert.IsTrue(robust < Accuracy(x, y), "the ensemble must break something at eps 8");
    }

    [TestMethod]
    public void GradientFreeEnsembleRunsOnABlackBox()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(32);
        var blackBox = new ScoreFunctionModel(images => F.softmax(Model.call(images), 1), probabilities: true);
        var ensemble = new AutoAttack(new AutoAttackOptions { GradientFree = true, SquareQueries = 50, Epsilon = 16, Seed = 1 });
        Assert.AreEqual("square", ensemble.Components.Single().Name);
        var adv = ensemble.Generate(blackBox, x, y);
        Assert.IsTrue(Accuracy(adv, y) < Accuracy(x, y));
        Assert.IsTrue(((Square)ensemble.Components[0]).LastQueryCounts.All(q => q <= 50));
    }

    [TestMethod]
    public void EvaluatorReportsTheWorstCaseBesideTheEnsemble()
    {
        var data = TrainedModels.EvalData.Take(12);
        var report = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm", "autoattack-quick" }, Epsilons = new[] { 16.0 }, BatchSize = 12, Seed = 1 })
            .Evaluate(Model, data, "cnn");
        var worst = report.Get(RobustnessEvaluator.WorstCase, 16);
        Assert.IsTrue(worst.Top1 <= report.Get("fgsm", 16).Top1 && worst.Top1 <= report.Get("autoattack-quick", 16).Top1, "the worst case is at most every method");
        Assert.IsTrue(worst.Top5 >= worst.Top1);
        Assert.IsTrue(report.Get("autoattack-quick", 16).Top1 < report.Clean.Top1);
        // Without an ensemble there is no worst-case row (the paper's tables stay as they were).
        var plain = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm", "step-ll" }, Epsilons = new[] { 16.0 }, BatchSize = 24 })
            .Evaluate(Model, data, "cnn");
        Assert.IsFalse(plain.Rows.Any(r => r.Method == RobustnessEvaluator.WorstCase));
    }

    private static readonly Lazy<SmallCnn> StepLLTrained = new(() =>
    {
        // Adversarially trained (step l.l., the paper's Algorithm 1) on 3000 Fashion-MNIST images: a few seconds.
        manual_seed(11);
        var m = new SmallCnn(rho: 0.5);
        new AdversarialTrainer(new AdversarialTrainingOptions { Epochs = 2, BatchSize = 32, Optimizer = OptimizerKind.Adam, LearningRate = 2e-3, Seed = 11 })
            .Train(m, TestData.Train(3000));
        m.eval();
        return m;
    });

    [TestMethod]
    public void OnAnAdversariallyTrainedModelStrongerAttacksFindMore()
    {
        using var scope = NewDisposeScope();
        var model = StepLLTrained.Value;
        var (x, y) = TrainedModels.EvalBatch(128);
        Assert.IsTrue(TrainedModels.Accuracy(model, x, y) > 0.6, "the adversarially trained model must classify clean images");
        const double eps = 8;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        double fgsm = TrainedModels.Accuracy(model, Attacks.Fgsm(eps).Generate(model, x, y), y);
        double pgd = TrainedModels.Accuracy(model, Attacks.Pgd(eps, steps: 10, seed: 1).Generate(model, x, y), y);
        double apgd = TrainedModels.Accuracy(model, new Apgd(new ApgdOptions { Epsilon = eps, Iterations = 20, Seed = 1 }).Generate(model, x, y), y);
        var ensemble = new AutoAttack(new AutoAttackOptions { Epsilon = eps, ApgdIterations = 20, TargetClasses = 3, FabIterations = 20, SquareQueries = 100, Seed = 1 });
        double auto = TrainedModels.Accuracy(model, ensemble.Generate(model, x, y), y);
        Console.WriteLine($"clean {TrainedModels.Accuracy(model, x, y)} FGSM {fgsm} PGD {pgd} APGD-CE {apgd} AutoAttack {auto} ({watch.Elapsed.TotalSeconds:F1} s of attacks)");
        Assert.IsTrue(fgsm >= pgd && pgd >= apgd && apgd >= auto, $"FGSM {fgsm} >= PGD {pgd} >= APGD-CE {apgd} >= AutoAttack {auto} must hold");
        Assert.IsTrue(fgsm > auto, $"the ensemble must find more than FGSM ({fgsm} vs {auto})");
    }
}
