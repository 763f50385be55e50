using System.Buffers.Binary;
using System.Diagnostics;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Cli;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Reliability;

/// <summary>Bad input, interruptions and numerical trouble: loud, named failures and no lost work (docs/reliability.md).</summary>
[TestClass]
public sealed class ReliabilityTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>An image folder with one good PNG per class and one bad file in class "b".</summary>
    private static string FolderWith(string badName, byte[] badBytes)
    {
        string root = TestData.TempFolder();
        var ml = new MLContext(seed: 1);
        var two = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 20, subset: SubsetMode.Stratified, folder: TestData.Folder);
        ml.Data.SaveAsImageFolder(two, root);
        string cls = Directory.GetDirectories(root)[1];
        File.WriteAllBytes(Path.Combine(cls, badName), badBytes);
        return root;
    }

    private static byte[] PngHeader(int width, int height)
    {
        var bytes = new byte[33];
        new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R' }.CopyTo(bytes, 0);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(16), width);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(20), height);
        bytes[24] = 8; bytes[25] = 6; // 8-bit RGBA
        return bytes;
    }

    [TestMethod]
    public void EmptyForeignAndGiganticImageFilesAreRefusedByNameBeforeDecoding()
    {
        var ml = new MLContext(seed: 1);
        (string File, byte[] Bytes, string Expected)[] cases =
        {
            ("empty.png", Array.Empty<byte>(), "is empty"),
            ("notes.png", "just some text, not an image"u8.ToArray(), "is not a PNG, JPEG"),
            ("bomb.png", PngHeader(100_000, 100_000), "decompression bomb"),
            ("zero.png", PngHeader(0, 10), "header is corrupt"),
        };
        foreach (var (name, bytes, expected) in cases)
        {
            string root = FolderWith(name, bytes);
            var watch = Stopwatch.StartNew();
            var e = Assert.ThrowsExactly<InvalidDataException>(() => ml.Data.LoadFromImageFolder(root, 28, 28, grayscale: true), name);
            TestContext.WriteLine($"{name}: {e.Message}");
            StringAssert.Contains(e.Message, name);
            StringAssert.Contains(e.Message, expected);
            Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(10), "refused without decoding");
        }
    }

    [TestMethod]
    public void ATruncatedImageIsReportedWithItsFileNameInsteadOfDecodedAsBlankPixels()
    {
        // A real PNG cut in half: the header is fine, the pixel data is not.
        string root = FolderWith("placeholder.txt", Array.Empty<byte>());
        string cls = Directory.GetDirectories(root)[1];
        File.Delete(Path.Combine(cls, "placeholder.txt"));
        string victim = Directory.GetFiles(cls, "*.png")[0];
        var bytes = File.ReadAllBytes(victim);
        File.WriteAllBytes(victim, bytes[..(bytes.Length / 2)]);
        var ml = new MLContext(seed: 1);
        // Decoders fill a truncated PNG with blank pixels without complaint; the header check refuses it instead.
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageSetReader.Read(ml.Data.LoadFromImageFolder(root, 28, 28, grayscale: true)));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, Path.GetFileName(victim));
        StringAssert.Contains(e.Message, "truncated");
    }

    [TestMethod]
    public void EmptyAndSingleClassTrainingDataAreRefused()
    {
        var one = TestData.Train(600, SubsetMode.First);
        var labels = Enumerable.Range(0, one.RowCount).Select(_ => 3u).ToArray();
        var pixels = new float[one.RowCount * 784];
        for (int i = 0; i < one.RowCount; i++) one.CopyPixels(i, pixels.AsSpan(i * 784, 784));
        var singleClass = ImageSet.FromFloats(pixels, labels, FashionMnist.ClassNames, (1, 28, 28));
        var trainer = new AdversarialTrainer(new AdversarialTrainingOptions { MaxSteps = 1 });
        var e = Assert.ThrowsExactly<ArgumentException>(() => trainer.Train(new SmallCnn(rho: 0.25), singleClass));
        StringAssert.Contains(e.Message, "same label ('Dress')");
        e = Assert.ThrowsExactly<ArgumentException>(() => trainer.Train(new SmallCnn(rho: 0.25), one.Take(0)));
        StringAssert.Contains(e.Message, "no rows");
    }

    [TestMethod]
    public void AnUnwritableCheckpointFolderFailsBeforeTheFirstStep()
    {
        var progress = new List<TrainingProgress>();
        var trainer = new AdversarialTrainer(new AdversarialTrainingOptions { MaxSteps = 5, ProgressEvery = 1 },
            new CheckpointOptions { Directory = "/proc/cannot-write-here", Every = 1 });
        var e = Assert.ThrowsExactly<IOException>(() => trainer.Train(new SmallCnn(rho: 0.25), TestData.Train(64), new InlineProgress(progress.Add)));
        StringAssert.Contains(e.Message, "/proc/cannot-write-here");
        Assert.AreEqual(0, progress.Count, "no step may run before the failure");
    }

    [TestMethod]
    public void DivergingTrainingStopsAtTheStepItDivergesWithAHint()
    {
        var progress = new List<TrainingProgress>();
        var options = new AdversarialTrainingOptions { AdversarialPerBatch = 0, Optimizer = OptimizerKind.Sgd, LearningRate = 1e12, MaxSteps = 50, ProgressEvery = 1 };
        manual_seed(1);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => new AdversarialTrainer(options).Train(new SmallCnn(rho: 0.25), TestData.Train(640), new InlineProgress(progress.Add)));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "Training diverged at step");
        StringAssert.Contains(e.Message, "Lower the learning rate");
        int step = int.Parse(e.Message.Split("step ")[1].Split(':')[0]);
        Assert.AreEqual(progress.Count + 1, step, "detected in the step where the loss stopped being finite");
        Assert.IsTrue(progress.All(p => double.IsFinite(p.Loss)));
    }

    [TestMethod]
    public void AttackingAModelThatOutputsNaNIsAnError()
    {
        using var model = new SmallCnn(rho: 0.25);
        using (no_grad()) model.parameters().Last().fill_(float.NaN);
        var (x, y) = TestData.Test(8).ToTensors(0, 8);
        var e = Assert.ThrowsExactly<InvalidOperationException>(() => Attacks.Fgsm(8).Generate(model, x, y));
        StringAssert.Contains(e.Message, "NaN");
    }

    [TestMethod]
    public void AKilledAdversarialImageWriteLeavesNoHalfFileAndARerunCompletesIt()
    {
        string dir = TestData.TempFolder();
        var train = CliTests.Advml(dir, "train", "-o", "m.advml", "--train-count", "300", "--rho", "0.25", "--k", "0");
        Assert.AreEqual(0, train.Code, train.Err);
        string[] attack = { "attack", "--model", "m.advml", "--method", "fgsm", "--count", "3000", "--split", "train", "-o", "out" };
        using (var p = CliTests.Start(dir, attack))
        {
            string output = Path.Combine(dir, "out");
            var watch = Stopwatch.StartNew();
            while (!p.HasExited && watch.Elapsed < TimeSpan.FromMinutes(2)
                   && (!Directory.Exists(output) || Directory.GetFiles(output, "*.png", SearchOption.AllDirectories).Length < 200)) Thread.Sleep(5);
            if (p.HasExited) Assert.Inconclusive("the write finished before it could be interrupted");
            p.Kill(entireProcessTree: true);
            p.WaitForExit();
        }
        // A kill can leave a hidden temporary file (".name.tmp.png"), never a partial file under a final name.
        string[] Final() => Directory.GetFiles(Path.Combine(dir, "out"), "*.png", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith('.')).ToArray();
        var written = Final();
        TestContext.WriteLine($"killed after {written.Length} files");
        Assert.IsTrue(written.Length is > 0 and < 3000);
        // Every file under its final name is a complete image: ImageAnalytics decodes all of them.
        var ml = new MLContext(seed: 1);
        Assert.AreEqual(written.Length, ImageSetReader.Read(ml.Data.LoadFromImageFolder(Path.Combine(dir, "out"), 28, 28, grayscale: true)).RowCount);

        // The folder now holds images, so the rerun must say --overwrite to write there.
        var rerun = CliTests.Advml(dir, attack.Append("--overwrite").ToArray());
        Assert.AreEqual(0, rerun.Code, rerun.Err);
        Assert.AreEqual(3000, Final().Length);
        Assert.AreEqual(0, Directory.GetFiles(Path.Combine(dir, "out"), "*tmp*", SearchOption.AllDirectories).Length, "no temporary files remain");
    }

    private sealed class InlineProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
