using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.MLNet;

/// <summary>Issue 29: what belongs to the caller stays as the caller left it, and what the library made it frees.</summary>
[TestClass]
public sealed class CallerObjectsTests
{
    [TestMethod]
    public void EvaluationsLeaveTheCallersOptionsAsGiven()
    {
        var ml = new MLContext(seed: 1);
        var images = TestData.Test(24);
        // A classifier of [0, 255] inputs: the evaluation must use its range, and must not write it into the caller's options.
        var classifier = ml.Transforms.ImageClassifier(new SmallCnn(rho: 0.25), images.ClassNames, images.ImageShape, InputRange.Pixels);
        var pixels = ml.Data.LoadFromImageSet(images);
        var progress = new Progress<EvaluationProgress>(_ => { });
        var robustness = new RobustnessOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 4.0 }, Progress = progress };
        robustness.MethodOptions["fgsm"] = new AttackOptions { Epsilon = 3 };
        var fgsmSettings = robustness.MethodOptions["fgsm"];
        ml.Adversarial().EvaluateRobustness(classifier, pixels, robustness);
        Assert.AreSame(InputRange.UnitInterval, robustness.InputRange, "EvaluateRobustness overwrote the caller's InputRange");
        Assert.AreSame(progress, robustness.Progress);
        Assert.AreSame(fgsmSettings, robustness.MethodOptions["fgsm"]);
        Assert.AreSame(InputRange.UnitInterval, fgsmSettings.InputRange, "the caller's method settings were changed");

        var transfer = new TransferOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 4.0 } };
        ml.Adversarial().EvaluateTransfer(new Dictionary<string, ImageClassifierTransformer> { ["a"] = classifier }, pixels, transfer);
        Assert.AreSame(InputRange.UnitInterval, transfer.InputRange, "EvaluateTransfer overwrote the caller's InputRange");
    }

    [TestMethod]
    public void DisposingAClassifierFreesTheNetworkItMadeAndNotOneItWraps()
    {
        var ml = new MLContext(seed: 1);
        var images = TestData.Test(16);
        var data = ml.Data.LoadFromImageSet(images);
        var trained = ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(Rho: 0.25), AdversarialPerBatch = 0, MaxSteps = 1,
        }).Fit(data);
        Assert.IsInstanceOfType<IDisposable>(trained);
        var weight = trained.Model.parameters().First();
        trained.Dispose();
        Assert.IsTrue(weight.IsInvalid, "the network the trainer made is freed");
        var e = Assert.ThrowsExactly<ObjectDisposedException>(() => trained.Transform(data));
        StringAssert.Contains(e.Message, "load the model again");
        trained.Dispose(); // twice is fine

        using var mine = new SmallCnn(rho: 0.25);
        var wrapped = ml.Transforms.ImageClassifier(mine, images.ClassNames, images.ImageShape);
        wrapped.Dispose();
        Assert.IsFalse(mine.parameters().First().IsInvalid, "a network the caller wrapped stays the caller's");
        Assert.ThrowsExactly<ObjectDisposedException>(() => wrapped.Transform(data));
    }
}
