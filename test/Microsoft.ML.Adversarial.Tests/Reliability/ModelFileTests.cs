using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Cli;
using Microsoft.ML.Adversarial.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Reliability;

/// <summary>
/// Model files give the right model or a clear error: never a silently wrong model, never a native crash, never a
/// long wait or gigabytes of memory for a hostile file (docs/reliability.md, "Files").
/// </summary>
[TestClass]
public sealed class ModelFileTests
{
    public TestContext TestContext { get; set; } = null!;

    private static string SaveSmallModel(string folder, string name = "good.advml")
    {
        manual_seed(3);
        var description = new ModelDescription(new ModelSpec(Rho: 0.25), 10, 1, 28, 28);
        using var model = description.CreateModel();
        string path = Path.Combine(folder, name);
        ModelIO.Save(model, description, path);
        return path;
    }

    /// <summary>Copies a zip entry by entry; <paramref name="edit"/> may change an entry's bytes (the zip's CRC stays valid).</summary>
    internal static void RewriteZip(string source, string target, Func<string, byte[], byte[]>? edit = null, CompressionLevel level = CompressionLevel.Fastest)
    {
        var entries = new List<(string Name, byte[] Bytes)>();
        using (var zip = ZipFile.OpenRead(source))
            foreach (var e in zip.Entries)
            {
                using var s = e.Open();
                var m = new MemoryStream();
                s.CopyTo(m);
                entries.Add((e.FullName, m.ToArray()));
            }
        File.Delete(target);
        using var output = ZipFile.Open(target, ZipArchiveMode.Create);
        foreach (var (name, bytes) in entries)
        {
            using var s = output.CreateEntry(name, level).Open();
            s.Write(edit is null ? bytes : edit(name, bytes));
        }
    }

    private static string EditDescription(string good, string name, Func<string, string> edit)
    {
        string path = Path.Combine(Path.GetDirectoryName(good)!, name);
        RewriteZip(good, path, (entry, bytes) =>
            entry == "model.json" ? System.Text.Encoding.UTF8.GetBytes(edit(System.Text.Encoding.UTF8.GetString(bytes))) : bytes);
        return path;
    }

    private static byte[] Flip4(byte[] bytes)
    {
        var copy = (byte[])bytes.Clone();
        for (int i = 0; i < 4; i++) copy[copy.Length / 2 + 7 * i] ^= 0x5A;
        return copy;
    }

    [TestMethod]
    public void FlippedBytesInTheWeightsAreRefusedInsteadOfLoadingAWrongModel()
    {
        string folder = TestData.TempFolder();
        string good = SaveSmallModel(folder);

        // Stored (not deflated) entries: flipped bytes decode without error, so only a checksum can notice them.
        string stored = Path.Combine(folder, "stored.advml");
        RewriteZip(good, stored, level: CompressionLevel.NoCompression);
        ModelIO.Load(stored).Model.Dispose(); // an intact file still loads

        byte[] weights;
        using (var zip = ZipFile.OpenRead(good))
        using (var s = zip.GetEntry("weights.bin")!.Open())
        {
            var m = new MemoryStream();
            s.CopyTo(m);
            weights = m.ToArray();
        }
        var file = File.ReadAllBytes(stored);
        int at = file.AsSpan().IndexOf(weights.AsSpan(0, 256));
        Assert.IsTrue(at > 0, "the stored weights are in the file");
        string flipped = Path.Combine(folder, "flipped.advml");
        var damaged = (byte[])file.Clone();
        Flip4(weights).CopyTo(damaged, at);
        File.WriteAllBytes(flipped, damaged);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(flipped));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "flipped.advml");
        StringAssert.Contains(e.Message, "weights.bin");
        StringAssert.Contains(e.Message, "damaged");

        // Same bytes changed with a valid zip CRC (a rewritten entry): the SHA-256 in model.json notices.
        string rewritten = Path.Combine(folder, "rewritten.advml");
        RewriteZip(good, rewritten, (name, bytes) => name == "weights.bin" ? Flip4(bytes) : bytes);
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(rewritten));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "rewritten.advml");
        StringAssert.Contains(e.Message, "SHA-256");

        // A damaged description is noticed by its CRC too (a digit changed inside model.json).
        string descr = Path.Combine(folder, "descr.advml");
        var bytes = File.ReadAllBytes(stored);
        int rho = bytes.AsSpan().IndexOf("\"Rho\": 0.25"u8);
        Assert.IsTrue(rho > 0);
        bytes[rho + 10] = (byte)'6'; // 0.25 -> 0.26: one damaged digit in the description
        File.WriteAllBytes(descr, bytes);
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(descr));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "model.json");
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void FilesWithoutAHashFromTheFirstFormatStillLoadAfterTheirCrcCheck()
    {
        string folder = TestData.TempFolder();
        string good = SaveSmallModel(folder);
        string old = EditDescription(good, "old.advml", json =>
            System.Text.RegularExpressions.Regex.Replace(json, ",\\s*\"WeightsSha256\": \"[0-9A-F]+\"", ""));
        StringAssert.DoesNotMatch(ReadDescription(old), new System.Text.RegularExpressions.Regex("Sha256"));
        var (model, description) = ModelIO.Load(old);
        Assert.AreEqual(10, description.Classes);
        model.Dispose();
        Directory.Delete(folder, true);
    }

    private static string ReadDescription(string path)
    {
        using var zip = ZipFile.OpenRead(path);
        using var r = new StreamReader(zip.GetEntry("model.json")!.Open());
        return r.ReadToEnd();
    }

    /// <summary>Descriptions that used to crash the process (native abort) or allocate gigabytes; each is refused by name.</summary>
    internal static readonly (string Name, Func<string, string> Edit, string Expected)[] BadDescriptions =
    {
        ("null-description", j => Replace(j, "\"Description\": {", "\"Description\": null, \"Ignored\": {"), "description"),
        ("null-spec", j => Replace(j, "\"Spec\": {", "\"Spec\": null, \"IgnoredSpec\": {"), "Spec"),
        ("channels", j => Replace(j, "\"Channels\": 1", "\"Channels\": -1"), "Channels"),
        ("huge-images", j => Replace(Replace(j, "\"Height\": 28", "\"Height\": 60000"), "\"Width\": 28", "\"Width\": 60000"), "60000"),
        ("rho", j => Replace(j, "\"Rho\": 0.25", "\"Rho\": 200"), "rho"),
        ("one-class", j => Replace(j, "\"Classes\": 10", "\"Classes\": 1"), "classes"),
        ("class-names", j => Replace(j, "\"ClassNames\": null", "\"ClassNames\": [\"a\", \"b\"]"), "ClassNames"),
        ("not-json", j => j[..(j.Length / 2)], "model.json"),
    };

    private static string Replace(string s, string from, string to)
    {
        Assert.IsTrue(s.Contains(from), $"'{from}' not in {s}");
        return s.Replace(from, to);
    }

    [TestMethod]
    public void BadDescriptionsAreRefusedByNameBeforeAnythingIsAllocated()
    {
        string folder = TestData.TempFolder();
        string good = SaveSmallModel(folder);
        foreach (var (name, edit, expected) in BadDescriptions)
        {
            string path = EditDescription(good, name + ".advml", edit);
            var watch = Stopwatch.StartNew();
            var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(path), name);
            TestContext.WriteLine($"{name}: {e.Message}");
            StringAssert.Contains(e.Message, name + ".advml");
            StringAssert.Contains(e.Message, expected, StringComparison.OrdinalIgnoreCase);
            Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(5), $"{name}: refused from the description, not by trying");
        }
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void SpecsThatWouldNeedGigabytesAreRefusedWithTheParameterCount()
    {
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ModelDescription(new ModelSpec(Rho: 200), 10, 1, 28, 28).Validate());
        StringAssert.Contains(e.Message, "rho");
        // Within every single bound, but together too big: 16 x wider SmallCnn on 1024 x 1024 images.
        var big = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ModelDescription(new ModelSpec(Rho: 16), 10, 3, 1024, 1024).Validate());
        TestContext.WriteLine(big.Message);
        StringAssert.Contains(big.Message, "parameters");
        new ModelDescription(new ModelSpec(Rho: 2), 10, 1, 28, 28).Validate();
        new ModelDescription(new ModelSpec(ModelArchitecture.InceptionV3, Rho: 1) { AuxLogits = true }, 1000, 3, 299, 299).Validate();
        Assert.IsTrue(new ModelDescription(new ModelSpec(Rho: 0.25), 10, 1, 28, 28).EstimateParameterCount() > 10_000);
    }

    /// <summary>A weights entry that inflates far beyond what its description can need: refused by its declared size.</summary>
    [TestMethod]
    public void ADecompressionBombIsRefusedByItsDeclaredSizeAndALyingSizeStopsTheRead()
    {
        string folder = TestData.TempFolder();
        string good = SaveSmallModel(folder);
        const int BombBytes = 256 << 20;
        string bomb = Path.Combine(folder, "bomb.advml");
        RewriteZip(good, bomb, (name, bytes) => name == "weights.bin" ? new byte[BombBytes] : bytes);
        TestContext.WriteLine($"bomb: {new FileInfo(bomb).Length} bytes on disk, {BombBytes} inflated");
        var watch = Stopwatch.StartNew();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(bomb));
        TestContext.WriteLine($"{watch.ElapsedMilliseconds} ms: {e.Message}");
        StringAssert.Contains(e.Message, "bomb.advml");
        StringAssert.Contains(e.Message, "declares");
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(2));

        // The central directory lies (a small size) while the data inflates to 256 MiB: reading stops past the declared size.
        string liar = Path.Combine(folder, "liar.advml");
        var bytes = File.ReadAllBytes(bomb);
        PatchDeclaredSize(bytes, "weights.bin", 1000);
        File.WriteAllBytes(liar, bytes);
        watch.Restart();
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(liar));
        TestContext.WriteLine($"{watch.ElapsedMilliseconds} ms: {e.Message}");
        StringAssert.Contains(e.Message, "liar.advml");
        StringAssert.Contains(e.Message, "damaged");
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(2));
        Directory.Delete(folder, true);
    }

    /// <summary>Sets the uncompressed size of <paramref name="entry"/> in the central directory and the local header.</summary>
    private static void PatchDeclaredSize(byte[] zip, string entry, uint size)
    {
        var name = System.Text.Encoding.ASCII.GetBytes(entry);
        for (int i = 0; i + 46 < zip.Length; i++)
        {
            uint sig = BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(i));
            if (sig == 0x02014b50 && zip.AsSpan(i + 46, name.Length).SequenceEqual(name))
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 24), size);
            else if (sig == 0x04034b50 && zip.AsSpan(i + 30, name.Length).SequenceEqual(name))
                BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(i + 22), size);
        }
    }

    [TestMethod]
    public void TheCliTurnsBadModelFilesIntoOneLineInsteadOfACrash()
    {
        string folder = TestData.TempFolder();
        string good = SaveSmallModel(folder);
        var cases = BadDescriptions.Where(c => c.Name is "null-description" or "null-spec" or "channels" or "huge-images" or "rho")
            .Select(c => (File: EditDescription(good, c.Name + ".advml", c.Edit), c.Expected)).ToList();
        Directory.CreateDirectory(Path.Combine(folder, "a-folder"));
        cases.Add((Path.Combine(folder, "a-folder"), "is a directory"));
        foreach (var (file, expected) in cases)
        {
            var (code, _, err) = CliTests.Advml(folder, "evaluate", "--model", file, "--count", "10", "--methods", "fgsm", "--epsilons", "4");
            TestContext.WriteLine($"{Path.GetFileName(file)} -> {code}: {err}");
            Assert.AreEqual(2, code, err);
            var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.AreEqual(1, lines.Length, $"expected one line on stderr, got:\n{err}");
            StringAssert.StartsWith(lines[0], "advml:");
            StringAssert.Contains(err, Path.GetFileName(file));
            StringAssert.Contains(err, expected, StringComparison.OrdinalIgnoreCase);
        }
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void TrainWithAHugeRhoIsRefusedAtOnce()
    {
        string folder = TestData.TempFolder();
        var watch = Stopwatch.StartNew();
        var (code, _, err) = CliTests.Advml(folder, "train", "-o", "x.advml", "--rho", "200", "--train-count", "100");
        TestContext.WriteLine($"{watch.ElapsedMilliseconds} ms, exit {code}: {err}");
        Assert.AreEqual(2, code, err);
        Assert.AreEqual(1, err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, err);
        StringAssert.Contains(err, "rho");
        Assert.IsTrue(watch.Elapsed < TimeSpan.FromSeconds(15), "refused before loading data or building the network");
    }

    [TestMethod]
    public void ResumingWithOtherSettingsIsRefusedNamingEachDifference()
    {
        var data = TestData.Train(64);
        string dir = TestData.TempFolder();
        AdversarialTrainingOptions Options() => new()
        {
            BatchSize = 32, AdversarialPerBatch = 8, MaxSteps = 2, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, Seed = 3, Method = "fgsm",
        };
        new AdversarialTrainer(Options(), new CheckpointOptions { Directory = dir, Every = 1 }).Train(new SmallCnn(rho: 0.25), data);

        var changed = Options();
        changed.Seed = 4;
        changed.LearningRate = 2e-3;
        changed.AdversarialPerBatch = 16;
        changed.Method = "step-ll";
        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            new AdversarialTrainer(changed, new CheckpointOptions { Directory = dir, Resume = true }).Train(new SmallCnn(rho: 0.25), data));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "Seed: 3 vs 4");
        StringAssert.Contains(e.Message, "LearningRate: 0.001 vs 0.002");
        StringAssert.Contains(e.Message, "AdversarialPerBatch: 8 vs 16");
        StringAssert.Contains(e.Message, "Method: fgsm vs step-ll");

        // Other data: same row count, other rows.
        var other = TestData.Train(64, SubsetMode.First);
        e = Assert.ThrowsExactly<InvalidDataException>(() =>
            new AdversarialTrainer(Options(), new CheckpointOptions { Directory = dir, Resume = true }).Train(new SmallCnn(rho: 0.25), other));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "Data");

        // Same settings, more steps: resuming is what checkpoints are for.
        var longer = Options();
        longer.MaxSteps = 3;
        var result = new AdversarialTrainer(longer, new CheckpointOptions { Directory = dir, Resume = true }).Train(new SmallCnn(rho: 0.25), data);
        Assert.AreEqual(2, result.ResumedFromStep);
        Directory.Delete(dir, true);
    }

    [TestMethod]
    public void ASecondRunOnTheSameCheckpointFolderIsRefusedNamingTheHolder()
    {
        var data = TestData.Train(64);
        string dir = TestData.TempFolder();
        var options = new AdversarialTrainingOptions { BatchSize = 32, AdversarialPerBatch = 0, MaxSteps = 1, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3 };
        using (CheckpointLock.Acquire(dir))
        {
            var e = Assert.ThrowsExactly<IOException>(() =>
                new AdversarialTrainer(options, new CheckpointOptions { Directory = dir }).Train(new SmallCnn(rho: 0.25), data));
            TestContext.WriteLine(e.Message);
            StringAssert.Contains(e.Message, $"PID {Environment.ProcessId}");
            StringAssert.Contains(e.Message, Environment.MachineName);
        }
        // Released (as it is when a process dies): the next run goes ahead.
        new AdversarialTrainer(options, new CheckpointOptions { Directory = dir }).Train(new SmallCnn(rho: 0.25), data);
        Directory.Delete(dir, true);
    }
}
