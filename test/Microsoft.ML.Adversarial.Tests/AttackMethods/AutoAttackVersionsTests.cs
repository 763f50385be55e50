using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>Untargeted FAB and AutoAttack's 'plus' and 'rand' versions (issue 28, item 2).</summary>
[TestClass]
public sealed class AutoAttackVersionsTests
{
    [TestMethod]
    public void OnALinearModelUntargetedFabFindsTheExactDistanceToTheNearestBoundary()
    {
        using var scope = NewDisposeScope();
        const int n = 64, inputs = 20, classes = 10;
        var model = new LinearModel(classes, inputs, seed: 5);
        var rng = new Random(3);
        var rows = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, inputs).Select(_ => 0.3 + 0.4 * rng.NextDouble()).ToArray()).ToArray();
        var x = tensor(rows.SelectMany(r => r.Select(v => (float)v)).ToArray(), new long[] { n, inputs });
        var fab = (Fab)AttackRegistry.Create("fab", new FabOptions { Epsilon = 255, Iterations = 30 });
        var adv = fab.Generate(model.Module, x);
        var z = model.Module.call(adv).detach();
        int checkedCount = 0;
        for (int i = 0; i < n; i++)
        {
            var logits = Enumerable.Range(0, classes).Select(k => model.B[k] + Enumerable.Range(0, inputs).Sum(j => model.W[k, j] * rows[i][j])).ToArray();
            int y = Enumerable.Range(0, classes).MaxBy(k => logits[k]);
            // Closed form: min_k min ||delta||_inf with z_k(x + delta) = z_y(x + delta) is min_k |z_y - z_k| / ||w_y - w_k||_1 (pixels).
            double Distance(int k) => (logits[y] - logits[k]) / Enumerable.Range(0, inputs).Sum(j => Math.Abs(model.W[y, j] - model.W[k, j])) * 255;
            var nearest = Enumerable.Range(0, classes).Where(k => k != y).MinBy(Distance);
            double exact = Distance(nearest);
            if (exact / 255 > 0.25) continue; // the range would bind (each input moves by at most 0.3)
            checkedCount++;
            Assert.IsTrue(fab.LastDistances[i] >= exact * (1 - 1e-4) - 1e-4, $"example {i}: {fab.LastDistances[i]} below the minimum {exact}");
            Assert.AreEqual(exact, fab.LastDistances[i], exact * 0.01 + 1e-3, $"example {i}: untargeted FAB's distance vs the closed form");
            Assert.AreNotEqual(y, (int)z[i].argmax().item<long>(), $"example {i} is misclassified");
        }
        Assert.IsTrue(checkedCount >= 20, $"only {checkedCount} examples checked");
    }

    [TestMethod]
    public void L2ProjectionIsTheShortestStepOntoTheHyperplaneInsideTheBox()
    {
        using var scope = NewDisposeScope();
        // Row 0: w = (1, 2), t = (0.5, 0.5), w.d must rise by 0.3: d = lambda w with 5 lambda = 0.3, d = (0.06, 0.12).
        // Row 1: w = (1, 1), t = (0.9, 0.5): lambda = 0.2 would take coordinate 0 past 1, so it stops at 0.1 and
        // coordinate 1 moves 0.3. Row 2: unreachable (w.d must rise by 10): the box corner (0.1, 0.5).
        var t = tensor(new float[] { 0.5f, 0.5f, 0.9f, 0.5f, 0.9f, 0.5f }).view(3, 2);
        var w = tensor(new float[] { 1, 2, 1, 1, 1, 1 }).view(3, 2);
        var c = tensor(new float[] { 1.8f, 1.8f, 11.4f });
        var d = Fab.ProjectL2(t, w, c, zeros(3, 2), ones(3, 2)).data<float>().ToArray();
        var expected = new[] { 0.06f, 0.12f, 0.1f, 0.3f, 0.1f, 0.5f };
        for (int i = 0; i < expected.Length; i++) Assert.AreEqual(expected[i], d[i], 1e-6, $"component {i}: [{string.Join(", ", d)}]");
    }

    [TestMethod]
    public void OnALinearModelL2FabFindsTheExactL2DistanceToTheBoundary()
    {
        using var scope = NewDisposeScope();
        const int n = 64, inputs = 20, classes = 10;
        var model = new LinearModel(classes, inputs, seed: 5);
        var rng = new Random(3);
        var rows = Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, inputs).Select(_ => 0.3 + 0.4 * rng.NextDouble()).ToArray()).ToArray();
        var x = tensor(rows.SelectMany(r => r.Select(v => (float)v)).ToArray(), new long[] { n, inputs });
        foreach (var name in new[] { "fab-l2", "fab-t-l2" })
        {
            var fab = (Fab)AttackRegistry.Create(name, new FabOptions { Epsilon = 255, Iterations = 30, TargetClasses = 1 });
            var adv = fab.Generate(model.Module, x);
            int checkedCount = 0;
            for (int i = 0; i < n; i++)
            {
                var logits = Enumerable.Range(0, classes).Select(k => model.B[k] + Enumerable.Range(0, inputs).Sum(j => model.W[k, j] * rows[i][j])).ToArray();
                var order = Enumerable.Range(0, classes).OrderByDescending(k => logits[k]).ToArray();
                int y = order[0];
                // Closed form in pixel units: |z_y - z_k| / ||w_y - w_k||_2 * 255, where no input would leave [0, 1].
                double Distance(int k) => (logits[y] - logits[k]) / Math.Sqrt(Enumerable.Range(0, inputs).Sum(j => Math.Pow(model.W[y, j] - model.W[k, j], 2))) * 255;
                int nearest = Enumerable.Range(0, classes).Where(k => k != y).MinBy(Distance);
                int target = name == "fab-l2" ? nearest : order[1];
                if (name == "fab-t-l2" && nearest != target) continue;
                double exact = Distance(target);
                // The step is (w_k - w_y) scaled; skip rows where it would move an input by more than 0.3 (the box binds).
                double maxStep = Enumerable.Range(0, inputs).Max(j => Math.Abs(model.W[target, j] - model.W[y, j])) * exact / 255
                    / Math.Sqrt(Enumerable.Range(0, inputs).Sum(j => Math.Pow(model.W[y, j] - model.W[target, j], 2)));
                if (maxStep > 0.25) continue;
                checkedCount++;
                Assert.IsTrue(fab.LastDistances[i] >= exact * (1 - 1e-4) - 1e-3, $"{name} example {i}: {fab.LastDistances[i]} below the minimum {exact}");
                Assert.AreEqual(exact, fab.LastDistances[i], exact * 0.01 + 1e-2, $"{name} example {i}: L2 distance vs the closed form");
                double size = Math.Sqrt((adv[i] - x[i]).pow(2).sum().item<float>()) * 255;
                Assert.AreEqual(fab.LastDistances[i], size, 0.05, $"{name} example {i}: the result is the point of that L2 size");
            }
            Assert.IsTrue(checkedCount >= 10, $"{name}: only {checkedCount} examples checked");
        }
    }

    [TestMethod]
    public void UntargetedFabOnTheTrainedNetworkBreaksWithinEpsilonAndRestartsOnlyHelp()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(100);
        double Robust(int restarts)
        {
            var fab = (Fab)AttackRegistry.Create("fab", new FabOptions { Epsilon = 16, Iterations = 20, Restarts = restarts, Seed = 4 });
            var adv = fab.Generate(TrainedModels.SmallCnn, x, y);
            Assert.IsTrue((adv - x).abs().max().item<float>() <= 16 / 255.0 + 1e-6, "within epsilon");
            Assert.AreEqual("fab", fab.Name);
            return TrainedModels.Accuracy(TrainedModels.SmallCnn, adv, y);
        }
        double clean = TrainedModels.Accuracy(TrainedModels.SmallCnn, x, y), one = Robust(1), three = Robust(3);
        Assert.IsTrue(one < clean - 0.1, $"untargeted FAB breaks images: {one} vs clean {clean}");
        Assert.IsTrue(three <= one, $"restarts only add broken images: {three} vs {one}");
    }

    [TestMethod]
    public void SquareL2StaysOnItsBallWithinItsBudgetAndBreaksImages()
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(100);
        // 255 pixel units of L2 is 1.0 in [0, 1] images (AutoAttack's usual L2 budgets are 0.5 to 1.5).
        var square = (Square)AttackRegistry.Create("square-l2", new SquareOptions { Epsilon = 255, Queries = 300, Seed = 2 });
        var adv = square.Generate(TrainedModels.SmallCnn, x, y);
        Assert.AreEqual("square-l2", square.Name);
        var norms = (adv - x).flatten(1).pow(2).sum(1).sqrt().mul(255.0);
        Assert.IsTrue(norms.max().item<float>() <= 255 * (1 + 1e-4), $"L2 sizes up to {norms.max().item<float>()} (pixel units)");
        Assert.IsTrue(adv.min().item<float>() >= 0 && adv.max().item<float>() <= 1, "in the pixel range");
        Assert.IsTrue(square.LastQueryCounts.All(q => q <= 300), "within the query budget");
        double clean = TrainedModels.Accuracy(TrainedModels.SmallCnn, x, y), robust = TrainedModels.Accuracy(TrainedModels.SmallCnn, adv, y);
        Assert.IsTrue(robust < clean - 0.05, $"Square L2 breaks images: {robust} vs clean {clean}");
        var more = TrainedModels.Accuracy(TrainedModels.SmallCnn, AttackRegistry.Create("square-l2", new SquareOptions { Epsilon = 255, Queries = 1000, Seed = 2 }).Generate(TrainedModels.SmallCnn, x, y), y);
        Assert.IsTrue(more <= robust + 0.02, $"a larger budget does not do worse: {more} vs {robust}");
    }

    [TestMethod]
    public void AutoAttackL2RunsEveryComponentInL2()
    {
        var l2 = (AutoAttack)AttackRegistry.Create("autoattack-l2", new AutoAttackOptions { Epsilon = 128 });
        CollectionAssert.AreEqual(new[] { "apgd-ce-l2", "apgd-t-l2", "fab-t-l2", "square-l2" }, l2.Components.Select(c => c.Name).ToArray());
        Assert.ThrowsExactly<ArgumentException>(() => new AutoAttack(new AutoAttackOptions { Version = AutoAttackVersion.Plus, Norm = PgdNorm.L2 }).Generate(TrainedModels.SmallCnn, TrainedModels.EvalBatch(2).Images, TrainedModels.EvalBatch(2).Labels));
        Assert.AreEqual("autoattack", AttackRegistry.Create("autoattack", new AutoAttackOptions { Norm = PgdNorm.L2 }).Name, "the name fixes the norm");
    }

    [TestMethod]
    public void AutoAttackPlusRunsTheReferencesSixComponentsInItsOrder()
    {
        var plus = (AutoAttack)AttackRegistry.Create("autoattack-plus", new AutoAttackOptions { Epsilon = 8 });
        string Describe(Attack a) => a switch
        {
            Apgd g => $"apgd {g.Options.Loss} restarts {g.Options.Restarts}",
            Fab f => $"{f.Name} restarts {f.Options.Restarts}" + (f.Options.Targeted ? $" targets {f.Options.TargetClasses}" : ""),
            Square s => $"square {s.Options.Queries}",
            _ => a.Name,
        };
        CollectionAssert.AreEqual(new[]
        {
            "apgd CrossEntropy restarts 5", "apgd Dlr restarts 5", "fab restarts 5", "square 5000", "apgd TargetedDlr restarts 1", "fab-t restarts 1 targets 9",
        }, plus.Components.Select(Describe).ToArray(), string.Join(", ", plus.Components.Select(Describe)));
        Assert.AreEqual("autoattack-plus", plus.Name);
        // Cheaply end to end: every component runs, the ensemble is at most each component.
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(40);
        var quick = (AutoAttack)AttackRegistry.Create("autoattack-plus", new AutoAttackOptions { Epsilon = 16, ApgdIterations = 5, FabIterations = 5, SquareQueries = 20, TargetClasses = 2, Seed = 1 });
        var adv = quick.Generate(TrainedModels.SmallCnn, x, y);
        Assert.IsTrue(TrainedModels.Accuracy(TrainedModels.SmallCnn, adv, y) < TrainedModels.Accuracy(TrainedModels.SmallCnn, x, y));
    }
}
