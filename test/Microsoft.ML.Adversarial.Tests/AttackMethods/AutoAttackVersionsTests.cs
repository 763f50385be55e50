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
