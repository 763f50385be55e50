using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Cli;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Reliability;

/// <summary>
/// A user's own data meeting a model (issue 13): classes matched by name, subsets stratified on every source, pixel
/// ranges and label values checked before any work. Each test failed before its fix.
/// </summary>
[TestClass]
public sealed class UserDataTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly Lazy<(MLContext Ml, ImageClassifierTransformer Model)> Classifier = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var model = ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(Rho: 0.5), AdversarialPerBatch = 0, Epochs = 1, Optimizer = OptimizerKind.Adam, LearningRate = 2e-3, Seed = 2,
        }).Fit(TestData.Train(1500).View());
        return (ml, model);
    });

    /// <summary>The same images with the classes listed in another order (reversed names, labels renumbered to match).</summary>
    private static ImageSet Permuted(ImageSet set)
    {
        int k = set.ClassNames.Count;
        var names = set.ClassNames.Reverse().ToArray();
        var pixels = new float[set.RowCount * set.ImageSize];
        for (int i = 0; i < set.RowCount; i++) set.CopyPixels(i, pixels.AsSpan(i * set.ImageSize, set.ImageSize));
        var labels = Enumerable.Range(0, set.RowCount).Select(i => (uint)(k - 1 - set.GetLabel(i))).ToArray();
        return ImageSet.FromFloats(pixels, labels, names, set.ImageShape);
    }

    [TestMethod]
    public void MLNetMetricsDoNotDependOnTheLabelKeysOrder()
    {
        var (ml, model) = Classifier.Value;
        var test = TestData.Test(300);
        var straight = ml.MulticlassClassification.Evaluate(model.Transform(test.View()), topKPredictionCount: 3);
        var permuted = ml.MulticlassClassification.Evaluate(model.Transform(Permuted(test).View()), topKPredictionCount: 3);
        TestContext.WriteLine($"top-1 {straight.MicroAccuracy:P1} with the model's class order, {permuted.MicroAccuracy:P1} with the classes reversed");
        Assert.IsTrue(straight.MicroAccuracy > 0.5);
        Assert.AreEqual(straight.MicroAccuracy, permuted.MicroAccuracy, 1e-12, "the same images must score the same whatever the key order");
        Assert.AreEqual(straight.TopKAccuracy, permuted.TopKAccuracy, 1e-12);
        Assert.AreEqual(straight.LogLoss, permuted.LogLoss, 1e-6);

        // The FGSM transform reads true labels through the same map: reversed keys give the same adversarial pixels.
        var fgsm = ml.Transforms.Fgsm(model, 8);
        var a = TestData.ReadVectors(fgsm.Fit(test.View()).Transform(test.View()), "Pixels");
        var b = TestData.ReadVectors(fgsm.Fit(Permuted(test).View()).Transform(Permuted(test).View()), "Pixels");
        for (int i = 0; i < a.Count; i += 29) CollectionAssert.AreEqual(a[i], b[i], $"row {i}");

        // And the robustness report (catalog) aligns too.
        var report = ml.Adversarial().EvaluateRobustness(model, Permuted(test).View(), new RobustnessOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 8.0 } });
        Assert.AreEqual(straight.MicroAccuracy, report.Clean.Top1, 1e-12);
    }

    [TestMethod]
    public void UnknownOrMissingClassesAreAnErrorListingBothSets()
    {
        var test = TestData.Test(40);
        var numbered = ImageSet.FromBytes(new byte[40 * 784], Enumerable.Range(0, 40).Select(i => (uint)(i % 10)).ToArray(),
            Enumerable.Range(0, 10).Select(i => $"class{i}").ToArray(), (1, 28, 28));
        var e = Assert.ThrowsExactly<ArgumentException>(() => numbered.AlignTo(FashionMnist.ClassNames));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "'class0'");
        StringAssert.Contains(e.Message, "'T-shirt/top'");
        // A folder cannot hold "T-shirt/top": its folder-safe form matches.
        var safe = ImageSet.FromBytes(new byte[40 * 784], Enumerable.Range(0, 40).Select(i => (uint)(i % 10)).ToArray(),
            FashionMnist.ClassNames.Select(ClassMatch.FolderName).ToArray(), (1, 28, 28));
        CollectionAssert.AreEqual(FashionMnist.ClassNames.ToArray(), safe.AlignTo(FashionMnist.ClassNames).ClassNames.ToArray());
        // Through ML.NET: a label column with other classes than the model's is refused before scoring.
        var (ml, model) = Classifier.Value;
        var m = Assert.ThrowsExactly<ArgumentException>(() => model.Transform(numbered.View()));
        StringAssert.Contains(m.Message, "label column 'Label'");
        _ = test;
    }

    [TestMethod]
    public void EveryClassFolderReadsBackAsItsClass()
    {
        // Hostile names whose folder forms collide with other classes' names ("a/b" is written to "a_b", class "a_b" to "a_b~4").
        var names = Data.FileWriteFailureTests.HostileClassNames;
        var folders = ClassMatch.FolderNames(names);
        CollectionAssert.AreEqual(Enumerable.Range(0, names.Length).ToArray(), ClassMatch.Map(folders, names));
        var sorted = folders.OrderBy(f => f, StringComparer.Ordinal).ToArray();
        var map = ClassMatch.Map(sorted, names);
        for (int i = 0; i < sorted.Length; i++) Assert.AreEqual(folders[map[i]], sorted[i], $"folder '{sorted[i]}' read back as class '{names[map[i]]}'");
        // Real names still match exactly, whatever their order.
        CollectionAssert.AreEqual(new[] { 1, 0 }, ClassMatch.Map(new[] { "a_b", "a/b" }, new[] { "a/b", "a_b" }));
    }

    [TestMethod]
    public void CliEvaluatesAFolderWhoseClassOrderDiffersFromTheModels()
    {
        // Folders named after the model's classes sort differently from the model's order ("Ankle boot" first).
        string dir = TestData.TempFolder();
        var ml = new MLContext(seed: 1);
        var images = TestData.Test(200);
        ml.Data.SaveAsImageFolder(images.View(), Path.Combine(dir, "data", "test"));
        ml.Data.SaveAsImageFolder(TestData.Train(20).View(), Path.Combine(dir, "data", "train"));
        var (code, _, err) = CliTests.Advml(dir, "train", "-o", "m.advml", "--train-count", "2000", "--rho", "0.5", "--k", "0", "--epochs", "1");
        Assert.AreEqual(0, code, err);

        (code, _, err) = CliTests.Advml(dir, "evaluate", "--model", "m.advml", "--data", Path.Combine(dir, "data"), "--grayscale", "--image-size", "28",
            "--count", "200", "--methods", "fgsm", "--epsilons", "4", "-o", "eval.json");
        Assert.AreEqual(0, code, err);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json")));
        double cliTop1 = json.RootElement.GetProperty("Rows")[0].GetProperty("Top1").GetDouble();

        // Independent count: each PNG's folder names its class; the model's own class list gives the index.
        var (model, description) = ModelIO.Load(Path.Combine(dir, "m.advml"));
        var folderView = ml.Data.LoadFromImageFolder(Path.Combine(dir, "data", "test"), 28, 28, grayscale: true);
        var pixels = TestData.ReadVectors(folderView, "Pixels");
        var folderNames = TestData.KeyNames(folderView);
        var keys = TestData.ReadKeys(folderView);
        int right = 0;
        using (no_grad())
            for (int i = 0; i < pixels.Count; i++)
            {
                // The folder's class-name file gives the classes their own names back ("T-shirt/top").
                int truth = description.ClassNames!.ToList().IndexOf(folderNames[keys[i] - 1]);
                Assert.IsTrue(truth >= 0);
                if (model.call(tensor(pixels[i], new long[] { 1, 1, 28, 28 })).argmax(1).item<long>() == truth) right++;
            }
        TestContext.WriteLine($"CLI clean top-1 {cliTop1:P1}, direct count {right / (double)pixels.Count:P1}");
        Assert.IsTrue(right > 100, "a trained model gets most of 200 images right");
        Assert.AreEqual(right / (double)pixels.Count, cliTop1, 1e-9);

        // Folders named 0..9 do not name the model's classes: a clear error, not a number.
        var numbered = Path.Combine(dir, "numbered", "test");
        foreach (var (cls, i) in Directory.GetDirectories(Path.Combine(dir, "data", "test")).OrderBy(d => d, StringComparer.Ordinal).Select((d, i) => (d, i)))
            CopyFolder(cls, Path.Combine(numbered, i.ToString()));
        (code, _, err) = CliTests.Advml(dir, "evaluate", "--model", "m.advml", "--data", Path.Combine(dir, "numbered"), "--grayscale", "--image-size", "28");
        Assert.AreNotEqual(0, code);
        StringAssert.Contains(err, "do not match");
        StringAssert.Contains(err, "'0'");
        StringAssert.Contains(err, "'Trouser'");
    }

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var f in Directory.GetFiles(from)) File.Copy(f, Path.Combine(to, Path.GetFileName(f)));
    }

    [TestMethod]
    public void SubsetsOfAClassSortedSourceAreStratified()
    {
        // An image folder lists its rows class by class; the first n rows would be one or two classes.
        var sorted = TestData.Test(200).Select(Enumerable.Range(0, 200).OrderBy(i => TestData.Test(200).GetLabel(i)).ToArray());
        var subset = sorted.Stratified(50);
        var perClass = Enumerable.Range(0, subset.RowCount).GroupBy(i => subset.GetLabel(i)).Select(g => g.Count()).ToList();
        Assert.AreEqual(10, perClass.Count, "every class is in the subset");
        Assert.IsTrue(perClass.All(c => c == 5), string.Join(",", perClass));
    }

    [TestMethod]
    public void PixelsOutsideTheModelsRangeAreRefusedAtFitScoringAndTraining()
    {
        var ml = new MLContext(seed: 1);
        var test = TestData.Test(64);
        // ExtractPixels without scaleImage gives 0..255; simulate exactly that column.
        var pixels = new float[64 * 784];
        for (int i = 0; i < 64; i++) test.CopyPixels(i, pixels.AsSpan(i * 784, 784));
        for (int i = 0; i < pixels.Length; i++) pixels[i] *= 255f;
        var raw = ImageSet.FromFloats(pixels, Enumerable.Range(0, 64).Select(i => test.GetLabel(i)).ToArray(), test.ClassNames, test.ImageShape);

        var fit = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.AdversarialTraining(
            new AdversarialTrainingEstimator.Options { MaxSteps = 1 }).Fit(raw.View()));
        TestContext.WriteLine(fit.Message);
        StringAssert.Contains(fit.Message, "scaleImage: 1f / 255");
        StringAssert.Contains(fit.Message, "Options.InputRange");

        var core = Assert.ThrowsExactly<ArgumentException>(() => new AdversarialTrainer(new AdversarialTrainingOptions { MaxSteps = 1 }).Train(new SmallCnn(rho: 0.25), raw));
        StringAssert.Contains(core.Message, "AdversarialTrainingOptions.InputRange");

        var (_, model) = Classifier.Value;
        var score = Assert.ThrowsExactly<ArgumentException>(() => TestData.ReadVectors(model.Transform(raw.View()), "Score"));
        StringAssert.Contains(score.Message, "scaleImage");
        var attack = Assert.ThrowsExactly<ArgumentException>(() => TestData.ReadVectors(ml.Transforms.StepLL(model, 8).Fit(raw.View()).Transform(raw.View()), "Pixels"));
        StringAssert.Contains(attack.Message, "scaleImage");

        pixels[5] = float.NaN;
        var nan = ImageSet.FromFloats(pixels.Select(v => v / 255f).ToArray(), Enumerable.Range(0, 64).Select(i => test.GetLabel(i)).ToArray(), test.ClassNames, test.ImageShape);
        var nanScore = Assert.ThrowsExactly<ArgumentException>(() => TestData.ReadVectors(model.Transform(nan.View()), "Score"));
        StringAssert.Contains(nanScore.Message, "NaN");
    }

    private sealed class FloatLabelRow
    {
        public float Label { get; set; }
        [VectorType(1, 28, 28)] public float[] Pixels { get; set; } = new float[784];
    }

    [TestMethod]
    public void SingleLabelsThatAreNotClassIndicesAreRefused()
    {
        var ml = new MLContext(seed: 1);
        var rows = new[] { 0f, 1f, 1_000_000f, 0f, 1f }.Select(l => new FloatLabelRow { Label = l }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageSetReader.Read(data));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "1000000");
        StringAssert.Contains(e.Message, "MapValueToKey");
        // Real class indices read fine, and meet a model's classes by index.
        var ok = ImageSetReader.Read(ml.Data.LoadFromEnumerable(new[] { 0f, 1f, 2f, 1f }.Select(l => new FloatLabelRow { Label = l }).ToList()));
        Assert.AreEqual(3, ok.ClassNames.Count);
        Assert.IsTrue(ok.ClassNamesAreIndices);
        Assert.AreEqual(2u, ok.AlignTo(FashionMnist.ClassNames).GetLabel(2));
    }

    [TestMethod]
    public void AdvmlFilesLoadIntoMLNetAndEachFormatNamesTheOtherOnesLoader()
    {
        var (ml, model) = Classifier.Value;
        string dir = TestData.TempFolder();
        string advml = Path.Combine(dir, "m.advml"), zip = Path.Combine(dir, "m.zip");
        ModelIO.Save(model.Model, model.Description, advml);
        var test = TestData.Test(50).View();
        ml.Model.Save(model, test.Schema, zip);

        var loaded = ml.Model.LoadImageClassifier(advml);
        CollectionAssert.AreEqual(TestData.ReadVectors(model.Transform(test), "Score")[7], TestData.ReadVectors(loaded.Transform(test), "Score")[7]);
        CollectionAssert.AreEqual(model.ClassNames.ToArray(), loaded.ClassNames.ToArray());

        var wrongWay = Assert.ThrowsExactly<InvalidDataException>(() => ml.Model.LoadImageClassifier(zip));
        StringAssert.Contains(wrongWay.Message, "mlContext.Model.Load");
        var otherWay = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(zip));
        StringAssert.Contains(otherWay.Message, "ML.NET model zip");
    }

    /// <summary>An untrained SmallCnn on 28x28 gray images saved as a model file with these class names.</summary>
    private static string ModelWithClasses(string dir, string file, params string[] classes)
    {
        string path = Path.Combine(dir, file);
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        using var model = spec.Create(classes.Length, (1, 28, 28));
        ModelIO.Save(model, new ModelDescription(spec, classes.Length, 1, 28, 28, classes), path);
        return path;
    }

    /// <summary>An image folder of 28x28 gray PNGs, <paramref name="perClass"/> in each class folder, named as given (no class-name file).</summary>
    private static string FolderOf(string root, int perClass, params string[] folders)
    {
        foreach (var (name, c) in folders.Select((n, c) => (n, c)))
        {
            Directory.CreateDirectory(Path.Combine(root, name));
            for (int i = 0; i < perClass; i++)
                File.WriteAllBytes(Path.Combine(root, name, $"{i}.png"), Data.TestImages.Uniform(28, 28, 0, (byte)(20 * c + i)));
        }
        return root;
    }

    private const string CafeComposed = "caf\u00e9", CafeDecomposed = "cafe\u0301", TheDecomposed = "the\u0301", TheComposed = "th\u00e9";

    [TestMethod]
    public void ClassNamesThatDifferOnlyInUnicodeNormalisationMatch()
    {
        // Issue 27: macOS lists the folder "café" decomposed ("e" + U+0301); the model's class list holds it composed. They
        // were refused as different classes, and the message printed two names that look the same.
        string dir = TestData.TempFolder();
        string model = ModelWithClasses(dir, "m.advml", CafeComposed, TheComposed);
        FolderOf(Path.Combine(dir, "data", "test"), 3, CafeDecomposed, TheDecomposed);
        var (code, _, err) = CliTests.Advml(dir, "evaluate", "--model", model, "--data", Path.Combine(dir, "data"), "--grayscale", "--image-size", "28",
            "--methods", "fgsm", "--epsilons", "4", "-o", "eval.json");
        TestContext.WriteLine(err);
        Assert.AreEqual(0, code, err);

        var ml = new MLContext(seed: 1);
        var view = ml.Data.LoadFromImageFolder(Path.Combine(dir, "data", "test"), 28, 28, grayscale: true);
        var classifier = ml.Model.LoadImageClassifier(model);
        Assert.AreEqual(6, TestData.ReadVectors(classifier.Transform(view), "Score").Count);
    }

    [TestMethod]
    public void TwoClassFoldersEqualOnceNormalisedAreRefusedNamingBoth()
    {
        // Two folders "café" (composed and decomposed) in one image folder look the same and are one class by name.
        string root = FolderOf(Path.Combine(TestData.TempFolder(), "test"), 2, CafeComposed, CafeDecomposed, "tea");
        var options = new ImageFolderOptions { Folder = root, Height = 28, Width = 28, Grayscale = true };
        foreach (var read in new Func<object>[] { () => ImageFolderSource.Open(options), () => new MLContext().Data.LoadFromImageFolder(options) })
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => read());
            TestContext.WriteLine(e.Message);
            StringAssert.Contains(e.Message, "U+00E9");
            StringAssert.Contains(e.Message, "U+0065 U+0301");
            StringAssert.Contains(e.Message, "Unicode normalisation");
        }
        // A model whose class list holds both forms cannot be matched by name either: refused naming both.
        var m = Assert.ThrowsExactly<ArgumentException>(() => ClassMatch.Map(new[] { CafeComposed, "tea" }, new[] { CafeComposed, CafeDecomposed, "tea" }));
        TestContext.WriteLine(m.Message);
        StringAssert.Contains(m.Message, "U+0065 U+0301");
    }

    [TestMethod]
    public void TShirtSlashTopAndItsFolderNameMatchInBothDirections()
    {
        // Issue 27: an image folder cannot hold "T-shirt/top", so a model trained on folders names the class "T-shirt_top".
        // Data naming "T-shirt/top" (Fashion-MNIST's IDX files) met such a model only one way round.
        string dir = TestData.TempFolder();
        string slash = ModelWithClasses(dir, "slash.advml", FashionMnist.ClassNames.ToArray());
        string folderNamed = ModelWithClasses(dir, "folder.advml", FashionMnist.ClassNames.Select(ClassMatch.FolderName).ToArray());
        FolderOf(Path.Combine(dir, "data", "test"), 2, FashionMnist.ClassNames.Select(ClassMatch.FolderName).ToArray());
        string[] quick = { "--methods", "fgsm", "--epsilons", "4", "--count", "20" };

        // The model says "T-shirt/top", the folder "T-shirt_top".
        var r = CliTests.Advml(dir, new[] { "evaluate", "--model", slash, "--data", Path.Combine(dir, "data"), "--grayscale", "--image-size", "28", "-o", "a.json" }.Concat(quick).ToArray());
        Assert.AreEqual(0, r.Code, r.Err);
        // The model says "T-shirt_top", the data "T-shirt/top" (Fashion-MNIST read with its own names): evaluate and attack.
        r = CliTests.Advml(dir, new[] { "evaluate", "--model", folderNamed, "-o", "b.json" }.Concat(quick).ToArray());
        TestContext.WriteLine(r.Err);
        Assert.AreEqual(0, r.Code, r.Err);
        r = CliTests.Advml(dir, "attack", "--model", folderNamed, "--method", "fgsm", "--epsilon", "4", "--count", "20", "-o", "adv");
        Assert.AreEqual(0, r.Code, r.Err);

        // The same through the library: an ML.NET classifier of that model scoring Fashion-MNIST's key values.
        var ml = new MLContext(seed: 1);
        var fashion = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 20, folder: TestData.Folder);
        var classifier = ml.Model.LoadImageClassifier(folderNamed);
        Assert.AreEqual(20, TestData.ReadVectors(classifier.Transform(fashion), "Score").Count);
        var metrics = ml.MulticlassClassification.Evaluate(classifier.Transform(fashion));
        Assert.IsTrue(metrics.MicroAccuracy >= 0);

        // Where both spellings name classes of one side, which is meant is not known: refused naming both.
        var e = Assert.ThrowsExactly<ArgumentException>(() => ClassMatch.Map(new[] { "T-shirt/top", "T-shirt_top" }, new[] { "T-shirt_top", "Trouser" }));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "'T-shirt/top' and 'T-shirt_top'");
    }

    [TestMethod]
    public void EachLoaderGivenTheOtherKindOfModelFileSaysWhichToUse()
    {
        // Issue 27: an .advml file given to ML.NET's mlContext.Model.Load, and an ML.NET model zip given to the CLI.
        string dir = TestData.TempFolder();
        string advml = ModelWithClasses(dir, "m.advml", FashionMnist.ClassNames.ToArray()), zip = Path.Combine(dir, "m.zip");
        var ml = new MLContext(seed: 1);
        var classifier = ml.Model.LoadImageClassifier(advml);
        var test = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 10, folder: TestData.Folder);
        ml.Model.Save(classifier, test.Schema, zip);

        // ML.NET's loader cannot be changed and has no hook for other formats: what it says is documented (docs/reliability.md).
        var mlnet = Assert.Throws<Exception>(() => ml.Model.Load(advml, out _));
        TestContext.WriteLine($"{mlnet.GetType().Name}: {mlnet.Message} / {mlnet.InnerException?.Message}");
        StringAssert.Contains(mlnet.Message, "Could not load legacy format model");

        foreach (var command in new[] { "evaluate", "attack" })
        {
            var r = Cli.CliTests.Advml(dir, command, "--model", zip, "--count", "10", "-o", command == "attack" ? "adv" : "e.json");
            TestContext.WriteLine(r.Err);
            Assert.AreNotEqual(0, r.Code);
            StringAssert.Contains(r.Err, "ML.NET model zip");
            StringAssert.Contains(r.Err, "ModelIO.Save(classifier.Model, classifier.Description");
            Assert.AreEqual(1, r.Err.Trim().Split('\n').Length, r.Err);
        }
    }
}
