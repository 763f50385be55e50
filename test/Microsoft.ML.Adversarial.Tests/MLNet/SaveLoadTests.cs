using System.IO.Compression;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Tests.MLNet;

/// <summary><c>mlContext.Model.Save</c> / <c>Load</c> give back our transformers, in this process and in a fresh one.</summary>
[TestClass]
public sealed class SaveLoadTests
{
    public TestContext TestContext { get; set; } = null!;
    private const int Rows = 64;

    private static readonly Lazy<(MLContext Ml, ImageClassifierTransformer Classifier, IDataView Test)> Trained = new(() =>
    {
        var ml = new MLContext(seed: 5);
        var train = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 600, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var test = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: Rows, subset: SubsetMode.First, folder: TestData.Folder);
        var classifier = ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(Rho: 0.25, Activation: ActivationSpec.Parse("reludecay:0.1")), Epochs = 1, Optimizer = OptimizerKind.Adam,
            LearningRate = 2e-3, ScoreColumnName = "Score", ScoringBatchSize = 24,
        }).Fit(train);
        return (ml, classifier, test);
    });

    /// <summary>Attack (step rnd., which draws random targets from its seed) then score: a two-transformer chain.</summary>
    private static TransformerChain<ITransformer> Chain(MLContext ml, ImageClassifierTransformer classifier, IDataView test)
    {
        var attack = ml.Transforms.AdversarialAttack(classifier, new AdversarialAttackEstimator.Options { Method = "step-rnd", Epsilon = 8, BatchSize = 20 }).Fit(test);
        return new TransformerChain<ITransformer>(attack, classifier);
    }

    [TestMethod]
    public void SavedChainLoadsInAFreshProcessAndGivesIdenticalScoresAndAdversarialPixels()
    {
        var (ml, classifier, test) = Trained.Value;
        var chain = Chain(ml, classifier, test);
        string folder = TestData.TempFolder();
        string path = Path.Combine(folder, "model.zip");
        ml.Model.Save(chain, test.Schema, path);

        var scored = chain.Transform(test);
        var expectedScores = TestData.ReadVectors(scored, "Score").SelectMany(v => v).ToArray();
        var expectedPixels = TestData.ReadVectors(scored, "Pixels").SelectMany(v => v).ToArray();

        string checker = CheckerPath();
        var psi = new System.Diagnostics.ProcessStartInfo("dotnet", $"\"{checker}\" \"{path}\" \"{folder}\" {Rows}")
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using (var p = System.Diagnostics.Process.Start(psi)!)
        {
            var err = p.StandardError.ReadToEndAsync();
            string output = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            TestContext.WriteLine(output + err.Result);
            Assert.AreEqual(0, p.ExitCode, output + err.Result);
        }
        var types = File.ReadAllLines(Path.Combine(folder, "types.txt"));
        CollectionAssert.AreEqual(new[] { typeof(AdversarialAttackTransformer).FullName, typeof(ImageClassifierTransformer).FullName }, types);
        CollectionAssert.AreEqual(expectedPixels, PythonReference.ReadFloats(Path.Combine(folder, "Pixels.bin")), "adversarial pixels differ after loading in a new process");
        CollectionAssert.AreEqual(expectedScores, PythonReference.ReadFloats(Path.Combine(folder, "Score.bin")), "scores differ after loading in a new process");
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void LoadedTransformersKeepTheirTypeOptionsAndWeights()
    {
        var (ml, classifier, test) = Trained.Value;
        var fgsm = ml.Transforms.Fgsm(classifier, epsilon: 4).Fit(test);
        string path = Path.Combine(TestData.TempFolder(), "fgsm.zip");
        ml.Model.Save(fgsm, test.Schema, path);

        var loaded = new MLContext(seed: 99).Model.Load(path, out var schema);
        var attack = Assert.IsInstanceOfType<FgsmTransformer>(loaded);
        Assert.AreEqual("fgsm", attack.CreateAttack().Name, "the loaded transform runs FGSM");
        Assert.AreEqual(4, attack.Epsilon);
        Assert.AreEqual(fgsm.Seed, attack.Seed);
        Assert.AreEqual("Pixels", attack.OutputColumnName);
        Assert.IsNotNull(schema.GetColumnOrNull("Label"));
        Assert.AreEqual(classifier.Spec, attack.Source.Spec);
        Assert.AreEqual(24, attack.Source.BatchSize);
        CollectionAssert.AreEqual(classifier.ClassNames.ToArray(), attack.Source.ClassNames.ToArray());
        foreach (var ((name, a), (_, b)) in classifier.Model.named_parameters().Zip(attack.Source.Model.named_parameters()))
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"{name} differs after loading");
        Assert.IsFalse(attack.Source.Model.training, "a loaded classifier is in evaluation mode");
    }

    [TestMethod]
    public void TruncatedNewerAndForeignFilesGiveClearErrors()
    {
        var (ml, classifier, test) = Trained.Value;
        string folder = TestData.TempFolder();
        string good = Path.Combine(folder, "good.zip");
        ml.Model.Save(classifier, test.Schema, good);

        string truncated = Path.Combine(folder, "truncated.zip");
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length * 2 / 3)]);
        var e = Assert.Throws<Exception>(() => ml.Model.Load(truncated, out _));
        TestContext.WriteLine($"truncated: {e.GetType().Name}: {e.Message}");

        // Written by a future version: the settings entry says so, and loading says what to do.
        string newer = Path.Combine(folder, "newer.zip");
        File.Copy(good, newer);
        using (var zip = ZipFile.Open(newer, ZipArchiveMode.Update))
        {
            var entry = zip.Entries.Single(x => x.FullName.EndsWith("State.json"));
            string json;
            using (var r = new StreamReader(entry.Open())) json = r.ReadToEnd();
            string name = entry.FullName;
            entry.Delete();
            var newerJson = System.Text.Encoding.UTF8.GetBytes(json.Replace("\"StateVersion\": 1", "\"StateVersion\": 7"));
            using (var w = zip.CreateEntry(name).Open()) w.Write(newerJson);
            // A newer library writes the settings' SHA-256 beside them too.
            zip.GetEntry(name + ".sha256")!.Delete();
            using var h = new StreamWriter(zip.CreateEntry(name + ".sha256").Open());
            h.Write(Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(newerJson)));
        }
        var inner = Innermost(Assert.Throws<Exception>(() => ml.Model.Load(newer, out _)));
        TestContext.WriteLine($"newer: {inner.Message}");
        StringAssert.Contains(inner.Message, "settings version 7");
        StringAssert.Contains(inner.Message, "Update the Microsoft.ML.Adversarial package");

        // A network entry that is damaged.
        string damaged = Path.Combine(folder, "damaged.zip");
        File.Copy(good, damaged);
        using (var zip = ZipFile.Open(damaged, ZipArchiveMode.Update))
        {
            var entry = zip.Entries.Single(x => x.FullName.EndsWith("Network.zip"));
            string name = entry.FullName;
            entry.Delete();
            using var w = zip.CreateEntry(name).Open();
            w.Write(new byte[] { 1, 2, 3 });
        }
        inner = Innermost(Assert.Throws<Exception>(() => ml.Model.Load(damaged, out _)));
        StringAssert.Contains(inner.Message, "Network.zip");

        string foreign = Path.Combine(folder, "notes.zip");
        File.WriteAllText(foreign, "not a model");
        Assert.Throws<Exception>(() => ml.Model.Load(foreign, out _));
        Directory.Delete(folder, true);
    }

    /// <summary>Damage that decodes without error (stored or rewritten entries) must not load as a different model.</summary>
    [TestMethod]
    public void DamagedSettingsOrNetworkEntriesAreRefusedInsteadOfLoadingAWrongModel()
    {
        var (ml, classifier, test) = Trained.Value;
        string folder = TestData.TempFolder();
        string good = Path.Combine(folder, "good.zip");
        ml.Model.Save(classifier, test.Schema, good);
        Assert.IsInstanceOfType<ImageClassifierTransformer>(ml.Model.Load(good, out _));

        // The network's weights with 4 flipped bytes, inside a Network.zip whose own zip is intact.
        string innerGood = Path.Combine(folder, "inner.advml"), innerBad = Path.Combine(folder, "inner-bad.advml");
        using (var zip = ZipFile.OpenRead(good))
            zip.Entries.Single(x => x.FullName.EndsWith("Network.zip")).ExtractToFile(innerGood);
        Reliability.ModelFileTests.RewriteZip(innerGood, innerBad, (name, bytes) =>
        {
            if (name != "weights.bin") return bytes;
            for (int i = 0; i < 4; i++) bytes[bytes.Length / 2 + 5 * i] ^= 0x41;
            return bytes;
        });
        string network = Path.Combine(folder, "network.zip");
        Reliability.ModelFileTests.RewriteZip(good, network, (name, bytes) => name.EndsWith("Network.zip") ? File.ReadAllBytes(innerBad) : bytes);
        var inner = Innermost(Assert.Throws<Exception>(() => ml.Model.Load(network, out _)));
        TestContext.WriteLine($"network: {inner.Message}");
        StringAssert.Contains(inner.Message, "Network.zip");
        StringAssert.Contains(inner.Message, "SHA-256");

        // The settings with one number changed (a valid JSON, a valid zip).
        string settings = Path.Combine(folder, "settings.zip");
        Reliability.ModelFileTests.RewriteZip(good, settings, (name, bytes) => name.EndsWith("State.json")
            ? System.Text.Encoding.UTF8.GetBytes(System.Text.Encoding.UTF8.GetString(bytes).Replace("\"BatchSize\": 24", "\"BatchSize\": 25"))
            : bytes);
        inner = Innermost(Assert.Throws<Exception>(() => ml.Model.Load(settings, out _)));
        TestContext.WriteLine($"settings: {inner.Message}");
        StringAssert.Contains(inner.Message, "State.json");
        StringAssert.Contains(inner.Message, "SHA-256");
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void SavingAClassifierWhoseNetworkWasDisposedIsAnErrorAndLeavesNoFile()
    {
        var (ml, classifier, test) = Trained.Value;
        string folder = TestData.TempFolder();
        // A copy (the shared classifier stays usable), its network disposed, then saved.
        string good = Path.Combine(folder, "good.zip");
        ml.Model.Save(classifier, test.Schema, good);
        var copy = (ImageClassifierTransformer)ml.Model.Load(good, out _);
        copy.Model.Dispose();
        string broken = Path.Combine(folder, "disposed.zip");
        var e = Assert.Throws<Exception>(() => ml.Model.Save(copy, test.Schema, broken));
        TestContext.WriteLine($"disposed: {e.Message}");
        StringAssert.Contains(Innermost(e).Message, "disposed");
        Assert.IsFalse(File.Exists(broken), "no broken model file may be left behind");
        Directory.Delete(folder, true);
    }

    private sealed class ImageInput
    {
        [VectorType(1, 28, 28)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }

    private sealed class ImagePrediction
    {
        public float[] Score { get; set; } = Array.Empty<float>();
        public string PredictedClass { get; set; } = "";
    }

    [TestMethod]
    public void AppendedPipelineSavesLoadsAndPredictsOneImageAtATime()
    {
        var (ml, _, test) = Trained.Value;
        var train = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 300, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var pipeline = ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
            {
                Model = new ModelSpec(Rho: 0.25), Epochs = 1, Optimizer = OptimizerKind.Adam, LearningRate = 2e-3, Seed = 2,
            })
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));
        var model = pipeline.Fit(train);
        string path = Path.Combine(TestData.TempFolder(), "pipeline.zip");
        ml.Model.Save(model, train.Schema, path);

        var loaded = new MLContext(seed: 3).Model.Load(path, out _);
        var engine = ml.Model.CreatePredictionEngine<ImageInput, ImagePrediction>(loaded);
        var batch = TestData.ReadVectors(model.Transform(test), "Score");
        var pixels = TestData.ReadVectors(test, "Pixels");
        for (int i = 0; i < 10; i++)
        {
            var p = engine.Predict(new ImageInput { Pixels = pixels[i] });
            Assert.AreEqual(10, p.Score.Length);
            float diff = p.Score.Zip(batch[i], (a, b) => Math.Abs(a - b)).Max();
            Assert.IsTrue(diff < 1e-5f, $"row {i}: one-row prediction differs from batch scoring by {diff}");
            int best = Array.IndexOf(p.Score, p.Score.Max());
            Assert.AreEqual(FashionMnist.ClassNames[best], p.PredictedClass);
        }
    }

    private static Exception Innermost(Exception e)
    {
        while (e.InnerException is not null && e is not InvalidDataException) e = e.InnerException;
        return e;
    }

    private static string CheckerPath() =>
        TestData.BuiltAssembly(Path.Combine("test", "Microsoft.ML.Adversarial.ModelLoadCheck"), "Microsoft.ML.Adversarial.ModelLoadCheck.dll");
}
