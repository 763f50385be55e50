using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Tests.Masking;

/// <summary>
/// The gradient-masking checks (issue 28, item 3), both ways: each masked model of <see cref="MaskedModels"/> trips the
/// check meant for it, and the honest network behind all of them trips none.
/// </summary>
[TestClass]
public sealed class GradientMaskingTests
{
    private static readonly Lazy<ImageSet> Data = new(() => TestData.Test(200));

    internal static RobustnessReport Evaluate(Module<Tensor, Tensor> model, GradientMaskingChecks level, string[] methods, double[] epsilons)
    {
        var report = new RobustnessEvaluator(new RobustnessOptions
        {
            Methods = methods, Epsilons = epsilons, BatchSize = 100, MaskingChecks = level, MaskingSquareQueries = 300, Seed = 3,
        }).Evaluate(model, Data.Value, "model");
        Console.WriteLine(Describe(report));
        return report;
    }

    private static string Describe(RobustnessReport r) => r.ToString() + string.Join("\n", r.MaskingChecks.Select(c => $"{c.Check} eps {c.Epsilon}: {(c.Failed ? "FAILED" : "ok")} {c.Finding}"));

    private static void AssertFailed(RobustnessReport r, string check)
    {
        Assert.IsTrue(r.MaskingChecks.Any(c => c.Check == check && c.Failed), $"expected '{check}' to fail:\n{Describe(r)}");
        Assert.IsTrue(r.Warnings.Any(w => w.Contains($"'{check}' failed")), $"the failed check is a warning:\n{Describe(r)}");
    }

    [TestMethod]
    public void TheHonestNetworkTripsNoCheckEvenWithEveryProbe()
    {
        var r = Evaluate(TrainedModels.SmallCnn, GradientMaskingChecks.Full, new[] { "fgsm", "iter-basic", "iter-ll", "pgd-linf", "random-sign" }, new[] { 4.0, 8.0, 32.0 });
        Assert.IsFalse(r.GradientMaskingSuspected, Describe(r));
        Assert.AreEqual(0, r.Warnings.Count, Describe(r));
        // Every kind of check ran, so "no failure" means something.
        foreach (var check in new[] { MaskingChecks.ZeroGradient, MaskingChecks.RandomModel, MaskingChecks.LargeEpsilon, MaskingChecks.IterativeBeatsOneStep,
                     MaskingChecks.WhiteBoxBeatsBlackBox, MaskingChecks.GradientFreeOnly, MaskingChecks.NoiseBeatsAttack })
            Assert.IsTrue(r.MaskingChecks.Any(c => c.Check == check), $"'{check}' ran:\n{Describe(r)}");
    }

    [TestMethod]
    public void ARoundingLayerTripsTheZeroGradientCheckByDefaultAndTheProbesWithFull()
    {
        var model = MaskedModels.Rounding(TrainedModels.SmallCnn);
        // Before: PGD's random start moved every image, so the unmoved count saw nothing; robust accuracy near clean, no warning.
        var byDefault = Evaluate(model, GradientMaskingChecks.FromResults, new[] { "pgd-linf" }, new[] { 32.0 });
        Assert.IsTrue(byDefault.Get("pgd-linf", 32).Top1 > 0.5, "the masked model looks robust to PGD");
        AssertFailed(byDefault, MaskingChecks.ZeroGradient);

        var full = Evaluate(model, GradientMaskingChecks.Full, new[] { "pgd-linf" }, new[] { 32.0 });
        AssertFailed(full, MaskingChecks.LargeEpsilon);
        AssertFailed(full, MaskingChecks.WhiteBoxBeatsBlackBox);
        AssertFailed(full, MaskingChecks.GradientFreeOnly);
    }

    [TestMethod]
    public void ASaturatedSoftmaxTripsTheZeroGradientCheck()
    {
        var r = Evaluate(MaskedModels.SaturatedSoftmax(TrainedModels.SmallCnn), GradientMaskingChecks.FromResults, new[] { "fgsm", "pgd-linf" }, new[] { 8.0 });
        AssertFailed(r, MaskingChecks.ZeroGradient);
    }

    [TestMethod]
    public void ARandomInputTransformTripsTheRandomModelCheck()
    {
        var r = Evaluate(MaskedModels.RandomInput(TrainedModels.SmallCnn), GradientMaskingChecks.FromResults, new[] { "fgsm" }, new[] { 8.0 });
        AssertFailed(r, MaskingChecks.RandomModel);
        StringAssert.Contains(r.MaskingChecks.First(c => c.Check == MaskingChecks.RandomModel).Finding, "EotSamples");
    }

    [TestMethod]
    public void NoisyGradientsTripTheComparisonsAndMakeTheLabelLeakVerdictInconclusive()
    {
        var model = MaskedModels.NoisyGradient(TrainedModels.SmallCnn);
        var r = Evaluate(model, GradientMaskingChecks.Full, new[] { "fgsm", "pgd-linf" }, new[] { 16.0, 32.0 });
        AssertFailed(r, MaskingChecks.WhiteBoxBeatsBlackBox);
        Assert.IsFalse(r.MaskingChecks.Any(c => c.Check == MaskingChecks.ZeroGradient && c.Failed), "the gradient is noisy, not zero");
        Assert.IsFalse(r.LabelLeakingDetected, "a masked model's label-leak figure is no finding:\n" + Describe(r));
        foreach (var leak in r.LabelLeaks.Where(l => l.AboveClean || l.TrueLabelHelps))
            StringAssert.StartsWith(leak.Verdict, "Inconclusive");
    }

    [TestMethod]
    public void SquareOnAWeakModelWarnsOfNothing()
    {
        // An untrained network: most images are misclassified already, and Square returns those as they are.
        manual_seed(5);
        using var weak = new SmallCnn(rho: 0.25);
        weak.eval();
        var r = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "square" }, Epsilons = new[] { 8.0 }, MethodOptions = { ["square"] = new SquareOptions { Queries = 50 } } })
            .Evaluate(weak, Data.Value, "weak");
        Assert.IsTrue(r.Clean.Top1 < 0.5, $"the model is weak (clean {r.Clean.Top1})");
        Assert.AreEqual(0, r.Warnings.Count, Describe(r));
    }

    [TestMethod]
    public void TheComparisonRulesNeedMoreThanSamplingNoise()
    {
        MaskingEvidence Evidence(long oneStep, long iterative, long count)
        {
            var e = new MaskingEvidence();
            e.Results.Add(new MethodResult("fgsm", MethodKind.OneStep, 8, oneStep, count));
            e.Results.Add(new MethodResult("pgd-linf", MethodKind.Iterative, 8, iterative, count));
            return e;
        }
        bool Failed(MaskingEvidence e) => MaskingChecks.Judge(e).Single(c => c.Check == MaskingChecks.IterativeBeatsOneStep).Failed;
        Assert.IsTrue(Failed(Evidence(oneStep: 20, iterative: 80, count: 200)), "one step far ahead of many");
        Assert.IsFalse(Failed(Evidence(oneStep: 78, iterative: 80, count: 200)), "two images is noise");
        Assert.IsFalse(Failed(Evidence(oneStep: 80, iterative: 20, count: 200)), "iterative ahead is how it should be");
        Assert.IsFalse(Failed(Evidence(oneStep: 0, iterative: 2, count: 10)), "fewer than 3 images never count");

        var monotone = new MaskingEvidence();
        monotone.Results.Add(new MethodResult("pgd-linf", MethodKind.Iterative, 4, 40, 200));
        monotone.Results.Add(new MethodResult("pgd-linf", MethodKind.Iterative, 8, 90, 200));
        Assert.IsTrue(MaskingChecks.Judge(monotone).Any(c => c.Check == MaskingChecks.EpsilonMonotone && c.Failed && c.Epsilon == 8));
    }
}
