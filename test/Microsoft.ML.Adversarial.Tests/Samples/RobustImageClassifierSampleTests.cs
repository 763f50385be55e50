using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Data;
using RobustImageClassifierSample;

namespace Microsoft.ML.Adversarial.Tests.Samples;

/// <summary>
/// samples/RobustImageClassifier's Model Builder-style classes on a tiny image folder: Train writes a model file the
/// Consumption class's lazy engine predicts with, exactly as the in-memory pipeline does; and its ONNX target
/// (ConvertToOnnx of a trainer on the pixels, ApplyOnnxModel back) scores as the trainer does and serves as a transfer target.
/// </summary>
[TestClass]
public sealed class RobustImageClassifierSampleTests
{
    private const int PerClass = 4;

    /// <summary>A folder of PNGs, 4 Fashion-MNIST test images per class, in the sample's layout (one sub-folder per class).</summary>
    private static string TinyFolder(string root)
    {
        var ml = new MLContext(seed: 1);
        string folder = Path.Combine(root, "images");
        var images = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 10 * PerClass, subset: SubsetMode.Stratified, folder: TestData.Folder);
        Assert.AreEqual(10 * PerClass, ml.Data.SaveAsImageFolder(images, folder));
        return folder;
    }

    [TestMethod]
    public void TrainSavesAModelTheConsumptionClassPredictsWithAsThePipelineDoes()
    {
        string root = TestData.TempFolder();
        try
        {
            string folder = TinyFolder(root), modelPath = Path.Combine(root, "RobustImageClassifier.mlnet");
            ITransformer model = RobustImageClassifier.Train(modelPath, folder, epochs: 1);
            Assert.IsTrue(File.Exists(modelPath));

            var ml = new MLContext(seed: 1);
            var files = ml.Data.CreateEnumerable<RobustImageClassifier.ModelInput>(RobustImageClassifier.LoadImageFromFolder(ml, folder), reuseRowObject: false).ToList();
            Assert.AreEqual(10 * PerClass, files.Count);
            var classes = Directory.GetDirectories(folder).Select(Path.GetFileName).ToHashSet();
            Assert.IsTrue(files.All(f => classes.Contains(f.Label) && Path.IsPathRooted(f.ImagePath)), "one row per file, labelled by its folder, with a full path");

            // The lazy engine of the Consumption class reads the saved file; the in-memory model is the reference.
            RobustImageClassifier.MLNetModelPath = modelPath;
            var inMemory = ml.Model.CreatePredictionEngine<RobustImageClassifier.ModelInput, RobustImageClassifier.ModelOutput>(model);
            foreach (var file in files.Where((_, i) => i % PerClass == 0))
            {
                var input = new RobustImageClassifier.ModelInput { ImagePath = file.ImagePath };
                var output = RobustImageClassifier.Predict(input);
                var expected = inMemory.Predict(input);
                Assert.AreEqual(10, output.Score.Length);
                Assert.AreEqual(1.0, output.Score.Sum(), 1e-4, "Score holds class probabilities");
                Assert.IsTrue(classes.Contains(output.PredictedLabel), $"'{output.PredictedLabel}' is a class name");
                Assert.AreEqual(expected.PredictedLabel, output.PredictedLabel, file.ImagePath);
                CollectionAssert.AreEqual(expected.Score, output.Score, file.ImagePath);
                Assert.AreEqual(file.ImagePath, output.ImagePath);
            }
        }
        finally { Directory.Delete(root, true); }
    }

    [TestMethod]
    public void OnnxTargetScoresAsTheTrainerItWasExportedFromAndServesAsATransferTarget()
    {
        string root = TestData.TempFolder();
        try
        {
            var ml = new MLContext(seed: 1);
            // The sample's preprocessing on the tiny folder: key Label, Pixels Vector<Single, 1, 28, 28>.
            var files = RobustImageClassifier.LoadImageFromFolder(ml, TinyFolder(root));
            var pixels = ml.Data.Cache(ml.Transforms.SelectColumns("Label", "Pixels").Fit(RobustImageClassifier.BuildPreprocessing(ml).Fit(files).Transform(files))
                .Transform(RobustImageClassifier.BuildPreprocessing(ml).Fit(files).Transform(files)));
            Assert.AreEqual(new VectorDataViewType(NumberDataViewType.Single, 1, 28, 28), pixels.Schema["Pixels"].Type);

            string onnxPath = Path.Combine(root, "target.onnx");
            var (trainer, slotClasses) = OnnxTarget.TrainAndExport(ml, pixels, onnxPath, iterations: 5);
            var onnx = OnnxTarget.Load(ml, onnxPath, pixels);
            CollectionAssert.AreEqual(TestData.KeyNames(pixels), slotClasses.ToArray(), "score slots follow the label's key values");

            // The ONNX graph holds the Concatenate that flattens Pixels: it reads the 3-D column and scores as the trainer does.
            var expected = TestData.ReadVectors(trainer.Transform(pixels), "Score");
            var actual = TestData.ReadVectors(onnx.Transform(pixels), OnnxTarget.ScoreColumnName);
            Assert.AreEqual(expected.Count, actual.Count);
            for (int i = 0; i < expected.Count; i++)
                for (int k = 0; k < expected[i].Length; k++)
                    Assert.AreEqual(expected[i][k], actual[i][k], 1e-4, $"row {i}, slot {k}");

            // As a black-box transfer target: the table's error rate equals scoring the adversarial set with it.
            // Any source serves for this equality; an untrained seeded network keeps the test to seconds.
            TorchSharp.torch.manual_seed(3);
            var source = ml.Transforms.ImageClassifier(new Microsoft.ML.Adversarial.Models.SmallCnn(rho: 0.5), FashionMnist.ClassNames, (1, 28, 28));
            var data = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 40, subset: SubsetMode.Stratified, folder: TestData.Folder);
            var names = slotClasses.Select(c => FashionMnist.ClassNames.Single(n => ClassMatch.FolderName(n) == c)).ToList();
            var report = ml.Adversarial().EvaluateTransfer(new Dictionary<string, ImageClassifierTransformer> { ["cnn"] = source },
                new Dictionary<string, ITransformer> { ["onnx"] = onnx }, data,
                new TransferOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 16.0 }, BatchSize = 40 },
                blackBox: new BlackBoxClassifier.Options { ScoreColumnName = OnnxTarget.ScoreColumnName, ScoreClassNames = names });
            var adversarial = ml.Transforms.Fgsm(source, epsilon: 16).Fit(data).Transform(data);
            var labels = TestData.ReadKeys(data).Select(k => FashionMnist.ClassNames[(int)k - 1]).ToList();
            var predicted = TestData.ReadVectors(onnx.Transform(adversarial), OnnxTarget.ScoreColumnName).Select(s => names[Array.IndexOf(s, s.Max())]).ToList();
            double errorRate = labels.Zip(predicted, (l, p) => l != p ? 1.0 : 0).Average();
            Assert.AreEqual(errorRate, report.Get("cnn", "onnx", "fgsm", 16).ErrorRate, 1e-9);
        }
        finally { Directory.Delete(root, true); }
    }
}
