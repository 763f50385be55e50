using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>FAB-T and L2 APGD: properties that follow from their definitions, on a linear model (closed form) and the trained SmallCnn.</summary>
[TestClass]
public sealed class FabAndL2Tests
{
    private static nn.Module<Tensor, Tensor> Model => TrainedModels.SmallCnn;

    [TestMethod]
    public void LInfProjectionIsTheSmallestStepOntoTheHyperplaneInsideTheBox()
    {
        using var scope = NewDisposeScope();
        // t = (0.9, 0.5), w = (1, 1), box [0, 1]: w.d must rise by 0.4, coordinate 0 can move 0.1 only,
        // so lambda solves 0.1 + lambda = 0.4: d = (0.1, 0.3). Unreachable 10: the box corner, d = (0.1, 0.5).
        // The other side (w.t must fall by 0.4 from 1.4 to 1.0): d = (-0.2, -0.2).
        var t = tensor(new float[] { 0.9f, 0.5f, 0.9f, 0.5f, 0.9f, 0.5f }).view(3, 2);
        var w = ones(3, 2);
        var c = tensor(new float[] { 1.8f, 10f, 1.0f });
        var d = Fab.ProjectLInf(t, w, c, zeros(3, 2), ones(3, 2)).data<float>().ToArray();
        var expected = new[] { 0.1f, 0.3f, 0.1f, 0.5f, -0.2f, -0.2f };
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], d[i], 1e-6, $"component {i}: [{string.Join(", ", d)}]");
    }

    [TestMethod]
    public void OnALinearModelFabFindsTheExactMinimalDistanceToTheTargetBoundary()
    {
        using var scope = NewDisposeScope();
        const int n = 64, inputs = 20, classes = 10;
        var model = new LinearModel(classes, inputs, seed: 5);
        var rng = new Random(3);
        var rows = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, inputs).Select(_ => 0.3 + 0.4 * rng.NextDouble()).ToArray()).ToArray();
        var x = tensor(rows.SelectMany(r => r.Select(v => (float)v)).ToArray(), new long[] { n, inputs });
        var fab = new Fab(new FabOptions { Epsilon = 255, TargetClasses = 1, Iterations = 30 });
        var adv = fab.Generate(model.Module, x);
        var z = model.Module.call(adv).detach();
        int checkedCount = 0;
        for (int i = 0; i < n; i++)
        {
            var logits = Enumerable.Range(0, classes).Select(k => model.B[k] + Enumerable.Range(0, inputs).Sum(j => model.W[k, j] * rows[i][j])).ToArray();
            var order = Enumerable.Range(0, classes).OrderByDescending(k => logits[k]).ToArray();
            int y = order[0], target = order[1];
            // Closed form: min ||delta||_inf with (w_t - w_y).(x + delta) + b_t - b_y = 0 is |z_y - z_t| / ||w_y - w_t||_1, in pixels.
            double Distance(int k) => (logits[y] - logits[k]) / Enumerable.Range(0, inputs).Sum(j => Math.Abs(model.W[y, j] - model.W[k, j])) * 255;
            double exact = Distance(target);
            // Only where the target boundary is the nearest and the range does not bind (each input moves by <= 0.3).
            if (exact / 255 > 0.25 || Enumerable.Range(0, classes).Any(k => k != y && Distance(k) < exact)) continue;
            checkedCount++;
            Assert.AreEqual(target, fab.LastTargets[i], $"example {i} broken with its target");
            Assert.IsTrue(fab.LastDistances[i] >= exact * (1 - 1e-4) - 1e-4, $"example {i}: {fab.LastDistances[i]} below the minimum {exact}");
            Assert.AreEqual(exact, fab.LastDistances[i], exact * 0.01 + 1e-3, $"example {i}: FAB's distance vs the closed form");
            double size = ((adv[i] - x[i]).abs().max().item<float>()) * 255;
            Assert.AreEqual(fab.LastDistances[i], size, 1e-2, $"example {i}: the result is the point of that size");
            Assert.IsTrue(z[i, target].item<float>() > z[i, y].item<float>(), $"example {i}: the target's logit passes the true class's");
            Assert.AreEqual(target, (int)z[i].argmax().item<long>(), $"example {i} is classified as its target");
        }
        Assert.IsTrue(checkedCount >= 10, $"only {checkedCount} examples had the target boundary nearest");
    }

    [TestMethod]
    public void FabTStaysInTheBallHitsItsTargetsAndRepeats()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(32);
        const double eps = 16; // the fixture model's minimal L-inf distances lie around 3 to 50 pixel values
        Fab Make() => new(new FabOptions { Epsilon = eps, Iterations = 10, TargetClasses = 2, Restarts = 2, Seed = 6 });
        var fab = Make();
        var adv = fab.Generate(Model, x, y);
        float maxChange = (adv - x).abs().max().item<float>() * 255;
        Assert.IsTrue(maxChange <= eps + 1e-3, $"max change {maxChange} > eps {eps}");
        Assert.IsTrue(adv.min().item<float>() >= 0 && adv.max().item<float>() <= 1, "left [0, 1]");
        var pred = Model.call(adv).detach().argmax(1).data<long>().ToArray();
        var labels = y.data<long>().ToArray();
        var clean = Model.call(x).detach().argmax(1).data<long>().ToArray();
        int broken = 0, onTarget = 0;
        for (int i = 0; i < pred.Length; i++)
        {
            bool same = adv[i].equal(x[i]).all().item<bool>();
            if (fab.LastTargets[i] >= 0)
            {
                broken++;
                Assert.AreNotEqual(labels[i], pred[i], $"example {i} counted as broken but classified correctly");
                Assert.IsTrue(fab.LastDistances[i] <= eps, $"example {i} broken at distance {fab.LastDistances[i]} > eps");
                if (pred[i] == fab.LastTargets[i]) onTarget++;
            }
            else
            {
                Assert.IsTrue(same, $"example {i} not broken within eps must keep its clean image");
                if (clean[i] == labels[i]) Assert.IsTrue(fab.LastDistances[i] > eps, $"example {i}: a point within eps was found but not used");
            }
        }
        Assert.IsTrue(broken >= 5, $"FAB-T broke only {broken} of 32 at eps {eps}");
        Assert.IsTrue(onTarget >= 0.9 * broken, $"only {onTarget} of {broken} broken examples went to their target");
        Assert.IsTrue(Make().Generate(Model, x, y).equal(adv).all().item<bool>(), "same seed, different output");
    }

    [TestMethod]
    public void EnsembleWithFabTIsTheWorstCaseOfEachComponent()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(32);
        var ensemble = new AutoAttack(new AutoAttackOptions { Version = AutoAttackVersion.Quick, Epsilon = 12, ApgdIterations = 5, TargetClasses = 2, FabIterations = 5, SquareQueries = 20, Seed = 2 });
        CollectionAssert.AreEqual(new[] { "apgd-ce", "apgd-t", "fab-t", "square" }, ensemble.Components.Select(c => c.Name).ToArray(), "AutoAttack's standard order");
        var adv = ensemble.Generate(Model, x, y);
        double robust = TrainedModels.Accuracy(Model, adv, y);
        foreach (var component in ensemble.Components)
        {
            double own = TrainedModels.Accuracy(Model, AttackRegistry.Create(component.Name, component.Options).Generate(Model, x, y), y);
            Assert.IsTrue(robust <= own, $"ensemble {robust} > {component.Name} alone {own}");
        }
        // FAB-T alone, on every example, breaks within eps: its broken examples are ones the ensemble breaks too.
        var fab = (Fab)AttackRegistry.Create("fab-t", ensemble.Components[2].Options);
        fab.Generate(Model, x, y);
        var wrong = Model.call(adv).detach().argmax(1).ne(y).data<bool>().ToArray();
        for (int i = 0; i < wrong.Length; i++)
            if (fab.LastTargets[i] >= 0) Assert.IsTrue(wrong[i], $"FAB-T breaks example {i} within eps, the ensemble does not");
        Assert.AreEqual(100, new AutoAttack().Components.OfType<Fab>().Single().Options.Iterations, "standard FAB-T budget");
        Assert.AreEqual(9, new AutoAttack().Components.OfType<Fab>().Single().Options.TargetClasses, "standard FAB-T targets");
        Assert.AreEqual(25, new AutoAttack(new AutoAttackOptions { Version = AutoAttackVersion.Quick }).Components.OfType<Fab>().Single().Options.Iterations, "quick FAB-T budget");
    }

    [TestMethod]
    public void ResetRandomMakesTheSameEnsembleRepeatItsFirstCall()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(8);
        // The components keep generators of their own (APGD's random starts, Square's squares): resetting only the
        // ensemble's left them running on, so a reused AutoAttack (an ML.NET transformer's Reset) gave other examples.
        var ensemble = new AutoAttack(new AutoAttackOptions { Version = AutoAttackVersion.Quick, Epsilon = 2, ApgdIterations = 3, TargetClasses = 1, FabIterations = 2, SquareQueries = 10, Seed = 7 });
        var first = ensemble.Generate(Model, x, y);
        ensemble.ResetRandom();
        Assert.IsTrue(ensemble.Generate(Model, x, y).equal(first).all().item<bool>(), "after ResetRandom the ensemble must repeat its first call");
    }

    [TestMethod]
    public void L2ApgdStaysInTheL2BallAndTheRangeAndItsBestLossNeverFalls()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(24);
        const double eps = 255; // an L2 radius of 1.0 in [0, 1] units, AutoAttack's usual L2 budget on small images
        foreach (var name in new[] { "apgd-ce-l2", "apgd-t-l2" })
        {
            var options = (ApgdOptions)AttackRegistry.OptionsFor(name, new AttackOptions { Epsilon = eps, Seed = 4 });
            options.Iterations = 10;
            options.TargetClasses = 1;
            var attack = (Apgd)AttackRegistry.Create(name, options);
            Assert.AreEqual(name, attack.Name);
            var trace = new List<float[]>();
            attack.IterationObserver = (_, best) => trace.Add(best.cpu().data<float>().ToArray());
            var adv = attack.Generate(Model, x, y);
            var norms = ((adv - x) * 255).flatten(1).norm(1, false, 2).data<float>().ToArray();
            Assert.IsTrue(norms.Max() <= eps * (1 + 1e-4), $"{name}: L2 change {norms.Max()} > eps {eps}");
            Assert.IsTrue(norms.Max() > eps * 0.5, $"{name}: barely moved (L2 {norms.Max()})");
            Assert.IsTrue(adv.min().item<float>() >= 0 && adv.max().item<float>() <= 1, $"{name} left [0, 1]");
            for (int i = 1; i < trace.Count; i++)
                for (int j = 0; j < trace[i].Length; j++)
                    Assert.IsTrue(trace[i][j] >= trace[i - 1][j], $"{name}: best loss of example {j} fell at iteration {i}");
            Assert.IsTrue(TrainedModels.Accuracy(Model, adv, y) < TrainedModels.Accuracy(Model, x, y), $"{name} must break something at L2 eps 1");
        }
    }
}
