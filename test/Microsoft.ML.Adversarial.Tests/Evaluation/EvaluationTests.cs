using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Evaluation;

[TestClass]
public sealed class EvaluationTests
{
    private static readonly Lazy<SmallCnn> Other = new(() =>
    {
        manual_seed(31);
        var m = new SmallCnn(rho: 0.25, activation: ActivationSpec.Parse("elu"));
        new AdversarialTrainer(new AdversarialTrainingOptions { AdversarialPerBatch = 0, Epochs = 1, Optimizer = OptimizerKind.Adam, LearningRate = 2e-3, Seed = 8 })
            .Train(m, TestData.Train(1500));
        return m;
    });

    [TestMethod]
    public void RobustnessRowsMatchDirectAttacksAndFollowTheIntervalFormula()
    {
        var model = TrainedModels.SmallCnn;
        var data = TrainedModels.EvalData;
        var report = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm", "iter-ll" }, Epsilons = new[] { 4.0, 16.0 }, BatchSize = 100 })
            .Evaluate(model, data, "cnn");

        var (x, y) = data.ToTensors(0, data.RowCount);
        Assert.AreEqual(TrainedModels.Accuracy(model, x, y), report.Clean.Top1, 1e-12);
        foreach (var eps in new[] { 4.0, 16.0 })
        {
            using var scope = NewDisposeScope();
            // The evaluator reuses one gradient for all epsilons; the examples must equal a fresh FGSM at each epsilon.
            double direct = TrainedModels.Accuracy(model, Attacks.Fgsm(eps).Generate(model, x, y), y);
            Assert.AreEqual(direct, report.Get("fgsm", eps).Top1, 1e-12, $"fgsm eps {eps}");
        }
        foreach (var r in report.Rows)
        {
            Assert.AreEqual(data.RowCount, r.Count);
            Assert.AreEqual(Wilson.Interval((long)Math.Round(r.Top1 * r.Count), r.Count), (r.Top1Low, r.Top1High)); // the one interval
            Assert.AreEqual(r.Top1 / report.Clean.Top1, r.AccuracyRatio, 1e-12);
            Assert.IsTrue(r.Top5 >= r.Top1);
        }
        Assert.IsTrue(report.Get("fgsm", 16).Top1 < report.Get("fgsm", 4).Top1, "a larger epsilon must hurt more");
        Assert.IsTrue(report.Get("iter-ll", 16).Top1 < report.Clean.Top1);
        Assert.AreEqual(2, report.LabelLeaks.Count, "FGSM uses the true label: one leak check per epsilon");
        Assert.IsFalse(report.LabelLeakingDetected, "a clean-trained model shows no label leaking");
        Assert.AreEqual(0, report.Warnings.Count);
        StringAssert.Contains(report.ToCsv().Split('\n')[0], "Top1Low");
        StringAssert.Contains(report.ToJson(), "\"AccuracyRatio\"");
    }

    [TestMethod]
    public void LabelLeakVerdictsSayWhatWasFound()
    {
        var leak = new LabelLeakRow("m", "fgsm", 8, CleanTop1: 0.8, TrueLabelTop1: 0.9, PredictedLabelTop1: 0.4);
        Assert.IsTrue(leak.AboveClean);
        StringAssert.StartsWith(leak.Verdict, "LABEL LEAKING");
        var none = new LabelLeakRow("m", "fgsm", 8, 0.8, 0.3, 0.35);
        Assert.IsFalse(none.AboveClean || none.TrueLabelHelps);
        StringAssert.StartsWith(none.Verdict, "No leak");
    }

    /// <summary>A network whose output ignores its input: every input gradient is exactly zero.</summary>
    private sealed class ConstantModel : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Parameter bias = nn.Parameter(tensor(new float[] { 2, 1, 0, 0, 0, 0, 0, 0, 0, 0 }));
        public ConstantModel() : base(nameof(ConstantModel)) => RegisterComponents();
        public override Tensor forward(Tensor x) => bias.unsqueeze(0).expand(x.shape[0], 10) + 0 * x.flatten(1).sum(1, keepdim: true);
    }

    [TestMethod]
    public void AnAttackThatCannotMoveIsReportedAsGradientMaskingNotRobustness()
    {
        using var model = new ConstantModel();
        var report = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 8.0 } })
            .Evaluate(model, TestData.Test(50), "constant");
        Assert.AreEqual(report.Clean.Top1, report.Get("fgsm", 8).Top1, "nothing moved, so nothing changed");
        Assert.AreEqual(2, report.Warnings.Count, string.Join("\n", report.Warnings));
        StringAssert.Contains(report.Warnings[0], "gradient masking");
        StringAssert.Contains(report.Warnings[1], "'zero-gradient' failed");
        StringAssert.Contains(report.ToString(), "WARNING");
    }

    [TestMethod]
    public void NaNOutputsAndBadOptionsAreErrorsNotNumbers()
    {
        using var nanModel = new SmallCnn(rho: 0.25);
        using (no_grad()) nanModel.parameters().First().fill_(float.NaN);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => new RobustnessEvaluator().Evaluate(nanModel, TestData.Test(20), "broken"));
        StringAssert.Contains(e.Message, "NaN");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new RobustnessEvaluator(new RobustnessOptions { Epsilons = new[] { 300.0 } }));
        Assert.ThrowsExactly<ArgumentException>(() => new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsmm" } }));
        Assert.ThrowsExactly<ArgumentException>(() => new RobustnessEvaluator(new RobustnessOptions { Methods = Array.Empty<string>() }));
    }

    [TestMethod]
    public void TransferToItselfIsCompleteAndErrorRatesMatchTheRobustnessReport()
    {
        var a = TrainedModels.SmallCnn;
        var b = Other.Value;
        var data = TrainedModels.EvalData;
        var models = new Dictionary<string, nn.Module<Tensor, Tensor>> { ["A"] = a, ["C"] = b };
        var report = new TransferEvaluator(new TransferOptions { Methods = new[] { "fgsm", "iter-ll" }, Epsilons = new[] { 16.0 } })
            .Evaluate(new Dictionary<string, nn.Module<Tensor, Tensor>> { ["A"] = a }, models, data);
        Assert.AreEqual(4, report.Rows.Count);
        foreach (var method in new[] { "fgsm", "iter-ll" })
        {
            var self = report.Get("A", "A", method, 16);
            Assert.AreEqual(1.0, self.TransferRate, 1e-12, "examples that fooled A fool A");
            Assert.IsTrue(self.SourceFooled > 0);
            var cross = report.Get("A", "C", method, 16);
            Assert.IsTrue(cross.TransferRate is >= 0 and <= 1);
            Assert.AreEqual(cross.SourceFooled, self.SourceFooled, "the same examples go to every target");
        }
        var robust = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 16.0 }, CheckLabelLeaking = false }).Evaluate(a, data);
        Assert.AreEqual(1 - robust.Get("fgsm", 16).Top1, report.Get("A", "A", "fgsm", 16).ErrorRate, 1e-12);
        StringAssert.Contains(report.ToString(), "transfer rate");
    }

    [TestMethod]
    public void MLNetEvaluateAgreesWithTheRobustnessReport()
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 800, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var test = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 200, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var model = ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(Rho: 0.25), Epochs = 1, AdversarialPerBatch = 0, Optimizer = OptimizerKind.Adam, LearningRate = 2e-3,
        }).Fit(train);
        var report = ml.Adversarial().EvaluateRobustness(model, test, new RobustnessOptions { Methods = new[] { "fgsm", "step-ll" }, Epsilons = new[] { 8.0 } });
        var fgsm = ml.Adversarial().Evaluate(model, test, "fgsm", 8);
        var clean = ml.Adversarial().Evaluate(model, test, "clean");
        Assert.AreEqual(report.Clean.Top1, clean.MicroAccuracy, 1e-9);
        Assert.AreEqual(report.Clean.Top5, clean.TopKAccuracy, 1e-9);
        Assert.AreEqual(report.Get("fgsm", 8).Top1, fgsm.MicroAccuracy, 1e-9);
        Assert.AreEqual(report.Get("step-ll", 8).Top1, ml.Adversarial().Evaluate(model, test, "step-ll", 8).MicroAccuracy, 1e-9);
    }
}
