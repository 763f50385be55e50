using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.MLNet;

/// <summary>
/// A network the library did not train, as the ML.NET classifier: wrapped TorchSharp modules and imported PyTorch
/// weights score like the module, are attacked and evaluated, predict one row at a time, and save and load when the
/// library can rebuild their architecture.
/// </summary>
[TestClass]
public sealed class BringYourOwnModelTests
{
    private const int Rows = 128;

    private static IDataView TestView(MLContext ml) =>
        ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: Rows, subset: SubsetMode.Stratified, folder: TestData.Folder);

    /// <summary>softmax(module(x)) for the pixel vectors, computed without the library.</summary>
    private static float[][] ModuleProbabilities(nn.Module<Tensor, Tensor> module, List<float[]> pixels, (int C, int H, int W) shape)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = tensor(pixels.SelectMany(p => p).ToArray(), new long[] { pixels.Count, shape.C, shape.H, shape.W });
        var p = nn.functional.softmax(module.call(x), 1);
        return Enumerable.Range(0, pixels.Count).Select(i => p[i].data<float>().ToArray()).ToArray();
    }

    private static float MaxDifference(IEnumerable<float[]> a, IEnumerable<float[]> b) => a.Zip(b, (x, y) => x.Zip(y, (u, v) => Math.Abs(u - v)).Max()).Max();

    [TestMethod]
    public void WrappedModuleScoresLikeTheModuleIsAttackedEvaluatedAndPredictsOneRowAtATime()
    {
        var ml = new MLContext(seed: 1);
        var test = TestView(ml);
        var module = TrainedModels.SmallCnn;
        var classifier = ml.Transforms.ImageClassifier(module, FashionMnist.ClassNames, (1, 28, 28));
        Assert.AreEqual(ModelArchitecture.Custom, classifier.Spec.Architecture);

        var pixels = TestData.ReadVectors(test, "Pixels");
        var scores = TestData.ReadVectors(classifier.Transform(test), "Score");
        float diff = MaxDifference(scores, ModuleProbabilities(module, pixels, (1, 28, 28)));
        Assert.IsTrue(diff < 1e-6f, $"Score differs from softmax(module(x)) by {diff}");

        // Clean accuracy is the share of rows whose best score is the label; FGSM at eps 16 lowers it.
        var labels = TestData.ReadKeys(test);
        double expectedAccuracy = scores.Zip(labels, (s, l) => Array.IndexOf(s, s.Max()) == l - 1 ? 1.0 : 0).Average();
        var clean = ml.Adversarial().Evaluate(classifier, test, "clean");
        var fgsm = ml.Adversarial().Evaluate(classifier, test, "fgsm", 16);
        Assert.AreEqual(expectedAccuracy, clean.MicroAccuracy, 1e-9);
        Assert.IsTrue(expectedAccuracy > 0.6, $"the trained network scores {expectedAccuracy}");
        Assert.IsTrue(fgsm.MicroAccuracy < clean.MicroAccuracy - 0.2, $"FGSM eps 16: {fgsm.MicroAccuracy} against clean {clean.MicroAccuracy}");

        // The attack transform moves no pixel by more than 16/255 and keeps [0, 1].
        var adversarial = TestData.ReadVectors(ml.Transforms.Fgsm(classifier, 16).Fit(test).Transform(test), "Pixels");
        float moved = MaxDifference(adversarial, pixels);
        Assert.IsTrue(moved <= 16f / 255 + 1e-6f && moved > 15f / 255, $"largest pixel change {moved * 255} of 255");
        Assert.IsTrue(adversarial.All(v => v.All(p => p is >= 0 and <= 1)));

        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(classifier);
        for (int i = 0; i < 5; i++)
        {
            var p = engine.Predict(new ImageInput { Pixels = pixels[i] });
            Assert.IsTrue(p.Score.Zip(scores[i], (a, b) => Math.Abs(a - b)).Max() < 1e-6f, $"row {i}: one-row prediction differs from batch scoring");
        }
    }

    [TestMethod]
    public void ModuleWithoutAnArchitectureRefusesToSaveNamingTheFix()
    {
        var ml = new MLContext(seed: 1);
        var test = TestView(ml);
        var classifier = ml.Transforms.ImageClassifier(TrainedModels.SmallCnn, FashionMnist.ClassNames, (1, 28, 28));
        string path = Path.Combine(TestData.TempFolder(), "custom.zip");
        var e = Assert.Throws<NotSupportedException>(() => ml.Model.Save(classifier, test.Schema, path));
        StringAssert.Contains(e.Message, "pass that architecture");
        StringAssert.Contains(e.Message, "ModelIO.SavePyTorch");
        Assert.IsFalse(File.Exists(path), "no half-written model file is left behind");
    }

    [TestMethod]
    public void ModuleWithItsArchitectureSavesAndLoadsWithIdenticalScores()
    {
        var ml = new MLContext(seed: 1);
        var test = TestView(ml);
        var classifier = ml.Transforms.ImageClassifier(TrainedModels.SmallCnn, FashionMnist.ClassNames, (1, 28, 28), architecture: new ModelSpec(Rho: 0.5));
        string path = Path.Combine(TestData.TempFolder(), "wrapped.zip");
        ml.Model.Save(classifier, test.Schema, path);
        var loaded = Assert.IsInstanceOfType<ImageClassifierTransformer>(new MLContext(seed: 2).Model.Load(path, out _));
        Assert.AreEqual(0.5, loaded.Spec.Rho);
        CollectionAssert.AreEqual(TestData.ReadVectors(classifier.Transform(test), "Score").SelectMany(v => v).ToArray(),
            TestData.ReadVectors(loaded.Transform(test), "Score").SelectMany(v => v).ToArray());
        File.Delete(path);
    }

    [TestMethod]
    public void WrongArchitectureClassCountOrShapeIsRefusedByName()
    {
        var ml = new MLContext(seed: 1);
        var module = TrainedModels.SmallCnn;
        var e = Assert.Throws<ArgumentException>(() => ml.Transforms.ImageClassifier(module, FashionMnist.ClassNames, (1, 28, 28), architecture: new ModelSpec(Rho: 1)));
        StringAssert.Contains(e.Message, "Different shapes");
        e = Assert.Throws<ArgumentException>(() => ml.Transforms.ImageClassifier(module, FashionMnist.ClassNames.Take(9).ToArray(), (1, 28, 28)));
        StringAssert.Contains(e.Message, "[1, 9]");
        e = Assert.Throws<ArgumentException>(() => ml.Transforms.ImageClassifier(module, FashionMnist.ClassNames, (1, 32, 32)));
        StringAssert.Contains(e.Message, "1x32x32");
    }

    [TestMethod]
    public void ImportedPyTorchResNetScoresSavesLoadsAndIsAttackedInItsNormalisedRange()
    {
        var ml = new MLContext(seed: 1);
        // Fashion-MNIST, padded to 32 x 32 and repeated over three channels, ImageNet-normalised.
        var source = TestData.Test(64);
        var normalised = InputRange.ImageNet;
        var (x, y) = source.ToTensors(0, source.RowCount);
        var rgb = nn.functional.pad(x, new long[] { 2, 2, 2, 2 }).repeat(1, 3, 1, 1);
        rgb = rgb * normalised.UnitsPerPixelTensor(rgb) * 255 + normalised.MinTensor(rgb);
        var images = ImageSet.FromFloats(rgb.contiguous().data<float>().ToArray(), y.data<long>().Select(l => (uint)l).ToArray(), FashionMnist.ClassNames, (3, 32, 32));
        var view = images.View();

        string folder = TestData.TempFolder();
        string weights = Path.Combine(folder, "resnet18.pt");
        manual_seed(3);
        using var resnet = new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), 10, 3, 32, 32).CreateModel();
        ModelIO.SavePyTorch(resnet, weights);
        resnet.eval();

        var classifier = ml.Transforms.ImportPyTorchClassifier("resnet18", weights, FashionMnist.ClassNames, (3, 32, 32), normalised);
        Assert.AreEqual(ModelArchitecture.ResNet18, classifier.Spec.Architecture);
        var pixels = TestData.ReadVectors(view, "Pixels");
        var scores = TestData.ReadVectors(classifier.Transform(view), "Score");
        Assert.IsTrue(MaxDifference(scores, ModuleProbabilities(resnet, pixels, (3, 32, 32))) < 1e-6f, "imported scores differ from the module's");

        string path = Path.Combine(folder, "resnet18.zip");
        ml.Model.Save(classifier, view.Schema, path);
        var loaded = Assert.IsInstanceOfType<ImageClassifierTransformer>(ml.Model.Load(path, out _));
        Assert.AreEqual(normalised.Description, loaded.InputRange.Description);
        CollectionAssert.AreEqual(scores.SelectMany(v => v).ToArray(), TestData.ReadVectors(loaded.Transform(view), "Score").SelectMany(v => v).ToArray());

        // FGSM eps 16 in the normalised range: each channel moves by at most 16/255/std and stays inside its range.
        var adversarial = TestData.ReadVectors(ml.Transforms.Fgsm(loaded, 16).Fit(view).Transform(view), "Pixels");
        var std = new[] { 0.229f, 0.224f, 0.225f };
        for (int c = 0; c < 3; c++)
        {
            float limit = 16f / 255 / std[c], lo = normalised.Min[c], hi = normalised.Max[c];
            var moves = adversarial.Zip(pixels, (a, p) => Enumerable.Range(c * 1024, 1024).Max(i => Math.Abs(a[i] - p[i]))).Max();
            Assert.IsTrue(moves <= limit * 1.0001f && moves > limit * 0.5f, $"channel {c}: largest change {moves}, eps {limit}");
            Assert.IsTrue(adversarial.All(a => Enumerable.Range(c * 1024, 1024).All(i => a[i] >= lo - 1e-5f && a[i] <= hi + 1e-5f)), $"channel {c} leaves [{lo}, {hi}]");
        }
        Directory.Delete(folder, true);
    }

    private sealed class ImageInput
    {
        [VectorType(1, 28, 28)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    private sealed class ImagePrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
    }
}
