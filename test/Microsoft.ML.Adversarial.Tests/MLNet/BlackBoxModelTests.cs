using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Tests.MLNet;

/// <summary>
/// Models the library can only score, as targets: an ONNX network exported by PyTorch at test time and scored through
/// ML.NET's ApplyOnnxModel, and an ML.NET trainer on the pixels. The transfer tables must equal what scoring the
/// adversarial set directly gives, class slots must meet the data's classes by name, and Square must run on them.
/// </summary>
[TestClass]
public sealed class BlackBoxModelTests
{
    private const int Rows = 200;
    private static readonly Lazy<string> OnnxFile = new(ExportOnnx);

    private static string ExportOnnx()
    {
        string path = Path.Combine(TestData.TempFolder(), "fashion-cnn.onnx");
        int rc = PythonReference.Run($"{PythonReference.Script("onnx_classifier.py")} {TestData.Folder} {path}", out var output);
        Assert.AreEqual(0, rc, output);
        return path;
    }

    private static IDataView TestView(MLContext ml) =>
        ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: Rows, subset: SubsetMode.Stratified, folder: TestData.Folder);

    /// <summary>The ONNX network as ML.NET users score it: copy the pixels to its input name, ApplyOnnxModel.</summary>
    private static ITransformer OnnxModel(MLContext ml, IDataView data) =>
        ml.Transforms.CopyColumns("input", "Pixels").Append(ml.Transforms.ApplyOnnxModel("logits", "input", OnnxFile.Value)).Fit(data);

    private static int ArgMax(float[] v) => Array.IndexOf(v, v.Max());

    /// <summary>Error rate and transfer rate of one table cell, computed by scoring the adversarial set with the target directly.</summary>
    private static (double ErrorRate, double TransferRate, int Fooled) Direct(MLContext ml, ImageClassifierTransformer source, IDataView clean, IDataView adversarial,
        Func<IDataView, List<int>> targetPredictions)
    {
        var labels = TestData.ReadKeys(clean).Select(k => (int)k - 1).ToList();
        var sourceClean = TestData.ReadVectors(source.Transform(clean), "Score").Select(ArgMax).ToList();
        var sourceAdv = TestData.ReadVectors(source.Transform(adversarial), "Score").Select(ArgMax).ToList();
        var target = targetPredictions(adversarial);
        int wrong = 0, fooled = 0, transferred = 0;
        for (int i = 0; i < labels.Count; i++)
        {
            bool targetWrong = target[i] != labels[i];
            if (targetWrong) wrong++;
            if (sourceClean[i] == labels[i] && sourceAdv[i] != labels[i])
            {
                fooled++;
                if (targetWrong) transferred++;
            }
        }
        return ((double)wrong / labels.Count, (double)transferred / fooled, fooled);
    }

    private static IDataView Attack(MLContext ml, ImageClassifierTransformer source, IDataView data, string method, double epsilon) =>
        ml.Transforms.AdversarialAttack(source, new AdversarialAttackEstimator.Options { Method = method, Epsilon = epsilon, Seed = 1, BatchSize = Rows }).Fit(data).Transform(data);

    [TestMethod]
    public void OnnxTargetTransferTableEqualsScoringTheAdversarialSetWithApplyOnnxModel()
    {
        PythonReference.Require("torch");
        var ml = new MLContext(seed: 1);
        var data = TestView(ml);
        var source = ml.Transforms.ImageClassifier(TrainedModels.SmallCnn, FashionMnist.ClassNames, (1, 28, 28));
        var onnx = OnnxModel(ml, data);
        var options = new TransferOptions { Methods = new[] { "fgsm", "iter-ll" }, Epsilons = new[] { 8.0, 16.0 }, BatchSize = Rows };
        var report = ml.Adversarial().EvaluateTransfer(new Dictionary<string, ImageClassifierTransformer> { ["cnn"] = source },
            new Dictionary<string, ITransformer> { ["onnx"] = onnx }, data, options, blackBox: new BlackBoxClassifier.Options { ScoreColumnName = "logits" });

        List<int> OnnxPredictions(IDataView adversarial) => TestData.ReadVectors(onnx.Transform(adversarial), "logits").Select(ArgMax).ToList();
        var clean = TestData.ReadKeys(data).Select(k => (int)k - 1).ToList();
        double cleanAccuracy = OnnxPredictions(data).Zip(clean, (p, l) => p == l ? 1.0 : 0).Average();
        Assert.IsTrue(cleanAccuracy > 0.6, $"the exported network scores {cleanAccuracy:P1} on clean images");
        foreach (var method in options.Methods)
            foreach (var eps in options.Epsilons)
            {
                var row = report.Rows.Single(r => r.Source == "cnn" && r.Target == "onnx" && r.Method == method && r.Epsilon == eps);
                var direct = Direct(ml, source, data, Attack(ml, source, data, method, eps), OnnxPredictions);
                Assert.AreEqual(Rows, row.Count);
                Assert.AreEqual(direct.ErrorRate, row.ErrorRate, 1e-9, $"{method} eps {eps}: error rate");
                Assert.AreEqual(direct.Fooled, row.SourceFooled, $"{method} eps {eps}: examples that fooled the source");
                Assert.AreEqual(direct.TransferRate, row.TransferRate, 1e-9, $"{method} eps {eps}: transfer rate");
                // One-step FGSM transfers; iterative l.l. barely does (the paper's section 4.4), so only FGSM must raise the error.
                if (method == "fgsm" && eps == 16)
                    Assert.IsTrue(row.ErrorRate > 1 - cleanAccuracy, $"FGSM eps 16: adversarial error {row.ErrorRate:P1} is not above the clean error {1 - cleanAccuracy:P1}");
            }
    }

    [TestMethod]
    public void TrainerTargetMeetsTheDataClassesByNameAndEqualsDirectScoring()
    {
        var ml = new MLContext(seed: 1);
        var data = TestView(ml);
        var source = ml.Transforms.ImageClassifier(TrainedModels.SmallCnn, FashionMnist.ClassNames, (1, 28, 28));
        // Trained on labels numbered in reverse order: its score slots are the classes backwards, named by its key values.
        var reversed = FashionMnist.ClassNames.Reverse().ToList();
        var train = TestData.Train(1000).AlignTo(reversed, "training labels").View();
        var trainer = ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Pixels", maximumNumberOfIterations: 10).Fit(train);
        var options = new TransferOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 16.0 }, BatchSize = Rows };
        var report = ml.Adversarial().EvaluateTransfer(new Dictionary<string, ImageClassifierTransformer> { ["cnn"] = source },
            new Dictionary<string, ITransformer> { ["sdca"] = trainer }, data, options);

        // Direct: the trainer's PredictedLabel is a key of its own (reversed) numbering; its name is the class.
        List<int> SdcaPredictions(IDataView adversarial)
        {
            var names = TestData.KeyNames(train);
            return TestData.ReadKeys(trainer.Transform(adversarial), "PredictedLabel").Select(k => FashionMnist.ClassNames.ToList().IndexOf(names[k - 1])).ToList();
        }
        var row = report.Rows.Single(r => r.Target == "sdca");
        var direct = Direct(ml, source, data, Attack(ml, source, data, "fgsm", 16), SdcaPredictions);
        Assert.AreEqual(direct.ErrorRate, row.ErrorRate, 1e-9);
        Assert.AreEqual(direct.TransferRate, row.TransferRate, 1e-9);
        var cleanLabels = TestData.ReadKeys(data).Select(k => (int)k - 1);
        double cleanError = SdcaPredictions(data).Zip(cleanLabels, (p, l) => p != l ? 1.0 : 0).Average();
        Assert.IsTrue(cleanError < 0.4, $"the trainer errs on {cleanError:P1} of clean images");
    }

    [TestMethod]
    public void SquareOnABlackBoxMeasuresWhatItMeasuresWhiteBoxRepeatsAndCountsQueries()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 48, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var classifier = ml.Transforms.ImageClassifier(TrainedModels.SmallCnn, FashionMnist.ClassNames, (1, 28, 28));
        RobustnessOptions Options()
        {
            var o = new RobustnessOptions { Methods = new[] { "square" }, Epsilons = new[] { 8.0 }, BatchSize = 48 };
            o.MethodOptions["square"] = new SquareOptions { Queries = 100 };
            return o;
        }
        // The same network scored only through ML.NET's Transform (blackBox options make any model a black box).
        var first = ml.Adversarial().EvaluateRobustness(classifier, data, Options(), blackBox: new BlackBoxClassifier.Options());
        var again = ml.Adversarial().EvaluateRobustness(classifier, data, Options(), blackBox: new BlackBoxClassifier.Options());
        var whiteBox = ml.Adversarial().EvaluateRobustness(classifier, data, Options());

        double robust = first.Get("square", 8).Top1;
        Assert.AreEqual(robust, again.Get("square", 8).Top1, "a seeded Square run repeats");
        Assert.IsTrue(robust < first.Clean.Top1, $"Square at eps 8: {robust:P1}, clean {first.Clean.Top1:P1}");
        // Scores are log-probabilities on one side and logits on the other: the same margins, so the same search.
        Assert.AreEqual(whiteBox.Get("square", 8).Top1, robust, 2.0 / 48, "black-box and white-box Square on the same network");
        Assert.AreEqual(whiteBox.Clean.Top1, first.Clean.Top1, 1e-9);
        // At most the budget per image, plus the clean pass and Square's start.
        Assert.IsNotNull(first.BlackBoxQueries);
        Assert.IsTrue(first.BlackBoxQueries > 48 && first.BlackBoxQueries <= 48 * (100 + 2), $"{first.BlackBoxQueries} queries");
        Assert.IsNull(whiteBox.BlackBoxQueries);
    }

    [TestMethod]
    public void GradientMethodsOnABlackBoxFailBeforeAnyWorkAndNameTheMethodsThatRun()
    {
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 16, folder: TestData.Folder);
        // An ML.NET trainer on the pixels: no classifier of ours inside, so a black box.
        var blackBox = ml.MulticlassClassification.Trainers.SdcaMaximumEntropy("Label", "Pixels", maximumNumberOfIterations: 2).Fit(data);
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Adversarial().EvaluateRobustness(blackBox, data,
            new RobustnessOptions { Methods = new[] { "square", "fgsm" }, Epsilons = new[] { 8.0 } }, modelName: "sdca"));
        StringAssert.Contains(e.Message, "'fgsm' needs gradients");
        StringAssert.Contains(e.Message, "square");
        StringAssert.Contains(e.Message, "autoattack");

        // A score column that does not exist, or classes the model does not score, are named before scoring.
        var noScore = Assert.ThrowsExactly<ArgumentException>(() => ml.Adversarial().EvaluateRobustness(blackBox, data,
            blackBox: new BlackBoxClassifier.Options { ScoreColumnName = "logits" }));
        StringAssert.Contains(noScore.Message, "no column 'logits'");
        var wrongClasses = Assert.ThrowsExactly<ArgumentException>(() => ml.Adversarial().EvaluateRobustness(blackBox, data,
            blackBox: new BlackBoxClassifier.Options { ScoreColumnName = "Score", ScoreClassNames = Enumerable.Range(0, 10).Select(i => "class " + i).ToList() }));
        StringAssert.Contains(wrongClasses.Message, "T-shirt/top");
    }

    [TestMethod]
    public void AutoAttackOnAnOnnxModelRunsItsSquarePartAndIsNoStrongerThanTheClean()
    {
        PythonReference.Require("torch");
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 32, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var onnx = OnnxModel(ml, data);
        var options = new RobustnessOptions { Methods = new[] { "autoattack" }, Epsilons = new[] { 16.0 }, BatchSize = 32 };
        options.MethodOptions["autoattack"] = new AutoAttackOptions { SquareQueries = 50 };
        var report = ml.Adversarial().EvaluateRobustness(onnx, data, options, modelName: "onnx", blackBox: new BlackBoxClassifier.Options { ScoreColumnName = "logits" });
        var attacked = report.Get("autoattack", 16).Top1;
        Assert.IsTrue(attacked < report.Clean.Top1, $"AutoAttack (Square part) at eps 16: {attacked:P1}, clean {report.Clean.Top1:P1}");
        Assert.IsTrue(report.BlackBoxQueries <= 32 * (50 + 2), $"{report.BlackBoxQueries} queries for 32 images at 50 each");
    }

    [TestMethod]
    public void MethodOptionsForAMethodNotEvaluatedOrOfTheWrongTypeAreRefused()
    {
        var notEvaluated = new RobustnessOptions { Methods = new[] { "fgsm" } };
        notEvaluated.MethodOptions["sqaure"] = new SquareOptions();
        var e = Assert.ThrowsExactly<ArgumentException>(() => new RobustnessEvaluator(notEvaluated));
        StringAssert.Contains(e.Message, "'sqaure', which is not among Methods (fgsm)");
        var wrongType = new RobustnessOptions { Methods = new[] { "square" } };
        wrongType.MethodOptions["square"] = new ApgdOptions();
        e = Assert.ThrowsExactly<ArgumentException>(() => new RobustnessEvaluator(wrongType));
        StringAssert.Contains(e.Message, "takes SquareOptions");
    }
}
