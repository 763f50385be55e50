using Microsoft.ML.Adversarial.Evaluation;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Masking;

/// <summary>BPDA and EOT (issue 28, item 4) break the masked models, as any gradient attack's options.</summary>
[TestClass]
public sealed class BpdaAndEotTests
{
    private static double PgdAccuracy(nn.Module<Tensor, Tensor> model, PgdOptions options, int seedOfScoring = 0)
    {
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(200);
        options.Epsilon = 32;
        options.Seed = 11;
        var adv = new Pgd(options).Generate(model, x, y);
        manual_seed(seedOfScoring);
        return TrainedModels.Accuracy(model, adv, y);
    }

    [TestMethod]
    public void BpdaBringsTheRoundingModelDownToTheHonestNetworksRobustness()
    {
        var honest = PgdAccuracy(TrainedModels.SmallCnn, new PgdOptions());
        var rounding = MaskedModels.Rounding(TrainedModels.SmallCnn);
        var masked = PgdAccuracy(rounding, new PgdOptions());
        var bpda = PgdAccuracy(rounding, new PgdOptions { BpdaLayers = new[] { "input" } });
        Console.WriteLine($"PGD eps 32: honest {honest:P1}, rounding {masked:P1}, rounding with BPDA {bpda:P1}");
        Assert.IsTrue(masked > honest + 0.3, $"the rounding layer masks: PGD leaves {masked:P1} vs {honest:P1} on the honest network");
        Assert.AreEqual(honest, bpda, 0.03, $"with BPDA PGD finds the true robustness ({bpda:P1} vs {honest:P1})");
    }

    [TestMethod]
    public void BpdaReachesEveryGradientAttackAndItsHooksGoAfterwards()
    {
        var rounding = MaskedModels.Rounding(TrainedModels.SmallCnn);
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(100);
        foreach (var method in new[] { "fgsm", "iter-basic", "apgd-ce" })
        {
            AttackOptions Options(params string[] bpda)
            {
                var o = AttackRegistry.OptionsFor(method);
                o.Epsilon = 32;
                o.Seed = 1;
                o.BpdaLayers = bpda;
                return o;
            }
            var plain = TrainedModels.Accuracy(rounding, AttackRegistry.Create(method, Options()).Generate(rounding, x, y), y);
            var options = Options("input");
            var bpda = TrainedModels.Accuracy(rounding, AttackRegistry.Create(method, options).Generate(rounding, x, y), y);
            Assert.IsTrue(bpda < plain - 0.2, $"{method}: BPDA {bpda:P1} vs without {plain:P1}");
        }
        // The hooks are gone: the layer's gradient is zero again.
        using var grad = enable_grad();
        var input = x.detach().requires_grad_(true);
        nn.functional.cross_entropy(rounding.call(input), y).backward();
        Assert.AreEqual(0.0, input.grad!.abs().max().item<float>(), "no hook left behind");
    }

    [TestMethod]
    public void EotBreaksTheNoisyGradientModel()
    {
        var honest = PgdAccuracy(TrainedModels.SmallCnn, new PgdOptions());
        var noisy = MaskedModels.NoisyGradient(TrainedModels.SmallCnn);
        var one = PgdAccuracy(noisy, new PgdOptions());
        var eot = PgdAccuracy(noisy, new PgdOptions { EotSamples = 20 });
        Console.WriteLine($"PGD eps 32: honest {honest:P1}, noisy gradients {one:P1}, noisy with EOT 20 {eot:P1}");
        Assert.IsTrue(one > honest + 0.2, $"noisy gradients mask: PGD leaves {one:P1} vs {honest:P1} on the honest network");
        Assert.IsTrue(eot < one - 0.2 && eot < honest + 0.1, $"EOT averages the noise away: {eot:P1} (one draw {one:P1}, honest {honest:P1})");
    }

    [TestMethod]
    public void AutoAttackRandIsApgdCeAndDlrWithTwentyPassEot()
    {
        var rand = (AutoAttack)AttackRegistry.Create("autoattack-rand", new AutoAttackOptions { Epsilon = 32, Seed = 1, ApgdIterations = 10 });
        CollectionAssert.AreEqual(new[] { ApgdLoss.CrossEntropy, ApgdLoss.Dlr }, rand.Components.Select(c => ((ApgdOptions)c.Options).Loss).ToArray());
        Assert.IsTrue(rand.Components.All(c => c.Options.EotSamples == 20 && ((ApgdOptions)c.Options).Restarts == 1));
        Assert.IsNull(rand.Options.ForScoresOnly(), "'rand' has no score-based part");

        var noisy = MaskedModels.NoisyGradient(TrainedModels.SmallCnn);
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(200);
        var oneDraw = TrainedModels.Accuracy(noisy, new Apgd(new ApgdOptions { Epsilon = 32, Seed = 1, Iterations = 10 }).Generate(noisy, x, y), y);
        var eot = TrainedModels.Accuracy(noisy, rand.Generate(noisy, x, y), y);
        Console.WriteLine($"APGD-CE eps 32 on noisy gradients: one draw {oneDraw:P1}, autoattack-rand {eot:P1}");
        Assert.IsTrue(eot < oneDraw - 0.1, $"autoattack-rand {eot:P1} vs APGD-CE on one draw {oneDraw:P1}");
    }

    [TestMethod]
    public void BadBpdaAndEotSettingsAreRefusedNamingWhatToDo()
    {
        var rounding = MaskedModels.Rounding(TrainedModels.SmallCnn);
        using var scope = NewDisposeScope();
        var (x, y) = TrainedModels.EvalBatch(4);
        var missing = Assert.ThrowsExactly<ArgumentException>(() => new Pgd(new PgdOptions { BpdaLayers = new[] { "quantize" } }).Generate(rounding, x, y));
        StringAssert.Contains(missing.Message, "no layer named 'quantize'");
        StringAssert.Contains(missing.Message, "input");
        var shape = Assert.ThrowsExactly<InvalidOperationException>(() => new Pgd(new PgdOptions { BpdaLayers = new[] { "net" } }).Generate(rounding, x, y));
        StringAssert.Contains(shape.Message, "keeps its input's shape");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Pgd(new PgdOptions { EotSamples = 0 }).Generate(rounding, x, y));
        var square = Assert.ThrowsExactly<ArgumentException>(() => new Square(new SquareOptions { EotSamples = 20 }).Generate(rounding, x, y));
        StringAssert.Contains(square.Message, "takes no gradients");
    }
}
