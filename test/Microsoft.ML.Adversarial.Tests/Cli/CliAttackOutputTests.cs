using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>Issue 27, items 3, 7 and 8: what <c>advml attack</c> writes, replaces and shares.</summary>
[TestClass]
public sealed class CliAttackOutputTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>A test/ folder of one uniform grey 28x28 PNG per class, and an untrained SmallCnn over those classes.</summary>
    internal static void MakeDataAndModel(string dir, IReadOnlyList<string> classes, int imagesPerClass = 1)
    {
        using var bitmap = new SKBitmap(28, 28, SKColorType.Gray8, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(128, 128, 128));
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        var bytes = png.ToArray();
        foreach (var split in new[] { "train", "test" })
            foreach (var c in classes)
            {
                Directory.CreateDirectory(Path.Combine(dir, "data", split, c));
                for (int i = 0; i < imagesPerClass; i++) File.WriteAllBytes(Path.Combine(dir, "data", split, c, $"img{i}.png"), bytes);
            }
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        TorchSharp.torch.manual_seed(1);
        using var model = spec.Create(classes.Count, (1, 28, 28));
        ModelIO.Save(model, new ModelDescription(spec, classes.Count, 1, 28, 28, classes.ToArray()), Path.Combine(dir, "m.advml"));
    }

    internal static string[] DataArgs => new[] { "--data", "data", "--grayscale", "--image-size", "28" };

    /// <summary>Item 3: class 256 was written as label 0 (a byte); the labels file now holds every class index, and reads back.</summary>
    [TestMethod]
    public void IdxLabelsPast255ReadBackAsWritten()
    {
        string dir = TestData.TempFolder();
        var classes = Enumerable.Range(0, 1001).Select(i => $"c{i}").ToArray();
        MakeDataAndModel(dir, classes);
        var r = CliTests.Advml(dir, new[] { "attack", "--model", "m.advml", "--method", "fgsm", "--epsilon", "4", "--count", "1001", "--format", "idx", "-o", "adv" }
            .Concat(DataArgs).ToArray());
        Assert.AreEqual(0, r.Code, r.Err);
        using var source = IdxImageSource.Open(Path.Combine(dir, "adv", "images-idx-ubyte"), Path.Combine(dir, "adv", "labels-idx1-ubyte"), classes);
        var labels = Enumerable.Range(0, source.RowCount).Select(source.GetLabel).ToList();
        Assert.AreEqual(1001, labels.Count);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 1001).Select(i => (uint)i).ToList(), labels, "one image per class, each with its own class index");
        CollectionAssert.Contains(labels, 256u);
        CollectionAssert.Contains(labels, 1000u);
    }

    private static string[] Attack(int count, params string[] more) =>
        new[] { "attack", "--model", "m.advml", "--method", "fgsm", "--epsilon", "4", "--count", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "-o", "adv" }
            .Concat(DataArgs).Concat(more).ToArray();

    private static Dictionary<string, byte[]> Contents(IEnumerable<string> files) => files.ToDictionary(f => f, File.ReadAllBytes);

    /// <summary>
    /// Item 7: --overwrite deleted the user's own images whose names matched what attack writes (000000.png, ...). Now
    /// it removes only the files its manifest says an earlier run wrote, leaves the others and says so.
    /// </summary>
    [TestMethod]
    public void OverwriteRemovesOnlyWhatAdvmWroteAndSaysWhatItLeft()
    {
        string dir = TestData.TempFolder();
        MakeDataAndModel(dir, new[] { "a", "b" }, imagesPerClass: 2);
        // The user's own files, named as attack names its output, where this run does not write.
        var foreign = new[] { Path.Combine("a", "000100.png"), Path.Combine("b", "000101.png"), Path.Combine("mine", "000000.png"), "000002.png", "images-idx-ubyte" }
            .Select(f => Path.Combine(dir, "adv", f)).ToArray();
        foreach (var f in foreign)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(f)!);
            File.WriteAllText(f, "the user's own file " + f);
        }
        var theirs = Contents(foreign);

        var first = CliTests.Advml(dir, Attack(4, "--overwrite"));
        TestContext.WriteLine(first.Out + first.Err);
        Assert.AreEqual(0, first.Code, first.Err);
        foreach (var (f, bytes) in theirs) CollectionAssert.AreEqual(bytes, File.Exists(f) ? File.ReadAllBytes(f) : null, $"'{f}' was not written by advml and must stay as it was");
        StringAssert.Contains(first.Out, $"{foreign.Length} files advml did not write");
        var written = Directory.GetFiles(Path.Combine(dir, "adv"), "*.png", SearchOption.AllDirectories).Except(foreign).ToList();
        Assert.AreEqual(4, written.Count, string.Join(", ", written));

        // A second run with fewer images: the first run's extra images go (they are in the manifest), the user's stay.
        var second = CliTests.Advml(dir, Attack(2, "--overwrite", "--seed", "5"));
        Assert.AreEqual(0, second.Code, second.Err);
        var now = Directory.GetFiles(Path.Combine(dir, "adv"), "*.png", SearchOption.AllDirectories).Except(foreign).ToList();
        Assert.AreEqual(2, now.Count, "the earlier run's images this run did not replace are removed: " + string.Join(", ", now));
        foreach (var (f, bytes) in theirs) CollectionAssert.AreEqual(bytes, File.Exists(f) ? File.ReadAllBytes(f) : null, $"'{f}' must survive a second --overwrite");
    }

    /// <summary>Item 7: a file advml did not write where this run would write is never replaced: the run is refused before any work, naming it.</summary>
    [TestMethod]
    public void OverwriteRefusesToReplaceAFileItDidNotWrite()
    {
        string dir = TestData.TempFolder();
        MakeDataAndModel(dir, new[] { "a", "b" }, imagesPerClass: 2);
        var foreign = Enumerable.Range(0, 4).SelectMany(i => new[] { "a", "b" }.Select(c => Path.Combine(dir, "adv", c, $"{i:D6}.png"))).ToArray();
        foreach (var f in foreign)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(f)!);
            File.WriteAllText(f, "the user's own file " + f);
        }
        var theirs = Contents(foreign);
        var r = CliTests.Advml(dir, Attack(4, "--overwrite"));
        TestContext.WriteLine(r.Out + r.Err);
        Assert.AreNotEqual(0, r.Code, r.Out);
        StringAssert.Contains(r.Err, "did not write");
        StringAssert.Contains(r.Err, "4 such files"); // one image per row: rows 0 to 3, each in its class's folder
        foreach (var (f, bytes) in theirs) CollectionAssert.AreEqual(bytes, File.ReadAllBytes(f), $"'{f}' must not be replaced");
    }

    /// <summary>
    /// Item 8: two attacks into one folder at once both reported success and left a mix. The second is refused while the
    /// first runs, naming it; the first finishes and the folder holds its images only.
    /// </summary>
    [TestMethod]
    public void ASecondAttackIntoTheSameFolderIsRefusedWhileTheFirstRuns()
    {
        string dir = TestData.TempFolder();
        string[] Attack(string method, int count) =>
            new[] { "attack", "--model", "m.advml", "--method", method, "--count", count.ToString(System.Globalization.CultureInfo.InvariantCulture), "-o", "adv", "--overwrite" };
        var spec = new Microsoft.ML.Adversarial.Models.ModelSpec(Microsoft.ML.Adversarial.Models.ModelArchitecture.SmallCnn, 0.25);
        TorchSharp.torch.manual_seed(1);
        using (var model = spec.Create(10, (1, 28, 28)))
            ModelIO.Save(model, new ModelDescription(spec, 10, 1, 28, 28, FashionMnist.ClassNames.ToArray()), Path.Combine(dir, "m.advml"));

        using var first = CliTests.Start(dir, Attack("iter-basic", 3000)); // long enough to be running when the second starts
        var err = first.StandardError.ReadToEndAsync();
        var output = first.StandardOutput.ReadToEndAsync();
        // The first run is under way once its output folder holds anything (it takes the lock before it writes).
        var watch = System.Diagnostics.Stopwatch.StartNew();
        string adv = Path.Combine(dir, "adv");
        while (!(Directory.Exists(adv) && Directory.EnumerateFileSystemEntries(adv).Any()) && !first.HasExited && watch.Elapsed < TimeSpan.FromMinutes(1)) Thread.Sleep(5);
        var second = CliTests.Advml(dir, Attack("fgsm", 20));
        first.WaitForExit();
        TestContext.WriteLine($"second: {second.Code} {second.Err}\nfirst: {first.ExitCode} {output.Result} {err.Result}");
        if (first.ExitCode == 0 && second.Code == 0 && watch.Elapsed > TimeSpan.FromMinutes(1)) Assert.Inconclusive("the first attack never showed up in its folder");
        Assert.AreEqual(0, first.ExitCode, err.Result);
        Assert.AreNotEqual(0, second.Code, "the second attack into the same folder must be refused while the first runs: " + second.Out);
        StringAssert.Contains(second.Err, "in use by another attack");
        StringAssert.Contains(second.Err, $"PID {first.Id}");
        Assert.AreEqual(3000, Directory.GetFiles(adv, "*.png", SearchOption.AllDirectories).Length, "the folder holds the first run's images only");
    }

    /// <summary>
    /// Item 5: files the reader does not take were skipped without a word, and the same image in two class folders was
    /// taken twice (once as each class). The command now says both.
    /// </summary>
    [TestMethod]
    public void SkippedFilesAndDuplicatesAreReported()
    {
        string dir = TestData.TempFolder();
        MakeDataAndModel(dir, new[] { "a", "b" });
        string test = Path.Combine(dir, "data", "test");
        File.WriteAllBytes(Path.Combine(test, "a", "other.png"), Microsoft.ML.Adversarial.Tests.Data.TestImages.Uniform(28, 28, 0, 30));
        File.Copy(Path.Combine(test, "a", "other.png"), Path.Combine(test, "b", "copy-of-other.png"));
        File.WriteAllBytes(Path.Combine(test, "a", "scan.tif"), new byte[] { 0x49, 0x49, 0x2A, 0, 8, 0, 0, 0 });
        File.WriteAllText(Path.Combine(test, "b", "notes.txt"), "not an image");
        var r = CliTests.Advml(dir, new[] { "attack", "--model", "m.advml", "--method", "fgsm", "-o", "adv" }.Concat(DataArgs).ToArray());
        TestContext.WriteLine(r.Out + r.Err);
        Assert.AreEqual(0, r.Code, r.Err);
        StringAssert.Contains(r.Out, "skipped 2 files");
        StringAssert.Contains(r.Out, "scan.tif");
        StringAssert.Contains(r.Out, "notes.txt");
        StringAssert.Contains(r.Out, "copy-of-other.png");
        StringAssert.Contains(r.Out, "same bytes");
    }
}
