using System.IO.Compression;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>Issue 27, item 5: what the readers would take in unseen: a class with no readable image, a model zip with a repeated entry.</summary>
[TestClass]
public sealed class UnseenInputTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>A class folder whose files are all in a format the reader does not take was kept as a class with no images, without a word.</summary>
    [TestMethod]
    public void AClassWithNoReadableImageIsRefusedNamingWhatWasSkipped()
    {
        string root = TestData.TempFolder();
        Directory.CreateDirectory(Path.Combine(root, "cat"));
        Directory.CreateDirectory(Path.Combine(root, "dog"));
        File.WriteAllBytes(Path.Combine(root, "cat", "1.png"), TestImages.Uniform(8, 8, 0, 100));
        File.WriteAllBytes(Path.Combine(root, "dog", "1.tif"), new byte[] { 0x49, 0x49, 0x2A, 0, 8, 0, 0, 0 });
        File.WriteAllBytes(Path.Combine(root, "dog", "2.tif"), new byte[] { 0x49, 0x49, 0x2A, 0, 8, 0, 0, 0 });
        var options = new ImageFolderOptions { Folder = root, Height = 8, Width = 8 };
        foreach (var read in new Func<object>[] { () => ImageFolderSource.Open(options), () => new MLContext().Data.LoadFromImageFolder(options) })
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => read());
            TestContext.WriteLine(e.Message);
            StringAssert.Contains(e.Message, "'dog'");
            StringAssert.Contains(e.Message, "2 files");
            StringAssert.Contains(e.Message, "1.tif");
        }
    }

    /// <summary>
    /// Files the reader skips and copies of one image in two classes were said only by the CLI: a library user loading
    /// the folder through ML.NET heard nothing. They reach the caller's MLContext.Log as warnings.
    /// </summary>
    [TestMethod]
    public void SkippedFilesAndCopiesReachTheCallersMLContextLog()
    {
        string root = TestData.TempFolder();
        Directory.CreateDirectory(Path.Combine(root, "cat"));
        Directory.CreateDirectory(Path.Combine(root, "dog"));
        File.WriteAllBytes(Path.Combine(root, "cat", "1.png"), TestImages.Uniform(8, 8, 0, 100));
        File.WriteAllBytes(Path.Combine(root, "dog", "1.png"), TestImages.Uniform(8, 8, 0, 100));
        File.WriteAllBytes(Path.Combine(root, "dog", "2.png"), TestImages.Uniform(8, 8, 0, 200));
        File.WriteAllBytes(Path.Combine(root, "dog", "scan.tif"), new byte[] { 0x49, 0x49, 0x2A, 0, 8, 0, 0, 0 });
        var ml = new MLContext(seed: 1);
        var warnings = new List<string>();
        ml.Log += (_, e) => { if (e.Kind == Microsoft.ML.Runtime.ChannelMessageKind.Warning) warnings.Add(e.Message); };
        var data = ml.Data.LoadFromImageFolder(new ImageFolderOptions { Folder = root, Height = 8, Width = 8 });
        Assert.IsNotNull(data);
        TestContext.WriteLine(string.Join("\n", warnings));
        Assert.IsTrue(warnings.Any(w => w.Contains("skipped 1 files") && w.Contains("dog/scan.tif")), string.Join("\n", warnings));
        Assert.IsTrue(warnings.Any(w => w.Contains("same bytes") && w.Contains("cat/1.png") && w.Contains("dog/1.png")), string.Join("\n", warnings));
    }

    /// <summary>A model zip with two model.json entries was read from the first.</summary>
    [TestMethod]
    public void AModelZipWithARepeatedEntryIsRefused()
    {
        string dir = TestData.TempFolder(), good = Path.Combine(dir, "m.advml"), twice = Path.Combine(dir, "twice.advml");
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        using (var model = spec.Create(10, (1, 28, 28)))
            ModelIO.Save(model, new ModelDescription(spec, 10, 1, 28, 28, FashionMnist.ClassNames.ToArray()), good);
        using (var source = ZipFile.OpenRead(good))
        using (var target = ZipFile.Open(twice, ZipArchiveMode.Create))
        {
            foreach (var entry in source.Entries.Concat(source.Entries.Where(e => e.FullName == "model.json")))
            {
                using var from = entry.Open();
                using var to = target.CreateEntry(entry.FullName).Open();
                from.CopyTo(to);
            }
        }
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(twice));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "model.json");
        StringAssert.Contains(e.Message, "2 entries");
    }

    /// <summary>
    /// Issue 27: a model file re-packed by a tool that compresses with BZip2 (zip method 12) or LZMA (14), which .NET's
    /// ZipArchive cannot read, was refused with .NET's "unsupported compression method", naming neither file nor entry.
    /// </summary>
    [TestMethod]
    [DataRow("ZIP_BZIP2", 12, "BZip2")]
    [DataRow("ZIP_LZMA", 14, "LZMA")]
    public void AModelZipWhoseEntryUsesACompressionDotNetCannotReadNamesEntryMethodAndFix(string pythonMethod, int method, string methodName)
    {
        PythonReference.Require("zipfile, bz2, lzma");
        string dir = TestData.TempFolder(), good = Path.Combine(dir, "m.advml"), repacked = Path.Combine(dir, "repacked.advml");
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        using (var model = spec.Create(10, (1, 28, 28)))
            ModelIO.Save(model, new ModelDescription(spec, 10, 1, 28, 28, FashionMnist.ClassNames.ToArray()), good);
        // Python's zipfile writes the weights with the other method, the description deflated as before.
        string script = Path.Combine(dir, "repack.py");
        File.WriteAllText(script, $$"""
            import sys, zipfile
            with zipfile.ZipFile(sys.argv[1]) as a, zipfile.ZipFile(sys.argv[2], "w") as b:
                for e in a.infolist():
                    b.writestr(e.filename, a.read(e.filename), compress_type=zipfile.{{pythonMethod}} if e.filename == "weights.bin" else zipfile.ZIP_DEFLATED)
            """);
        Assert.AreEqual(0, PythonReference.Run($"\"{script}\" \"{good}\" \"{repacked}\"", out string output), output);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(repacked));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "'" + repacked + "'");
        StringAssert.Contains(e.Message, "weights.bin");
        StringAssert.Contains(e.Message, $"{methodName} (zip method {method})");
        StringAssert.Contains(e.Message, "Deflate or Stored");

        // The CLI says the same in one line.
        var r = Cli.CliTests.Advml(dir, "evaluate", "--model", repacked, "--count", "10", "--methods", "fgsm", "--epsilons", "4");
        Assert.AreNotEqual(0, r.Code);
        StringAssert.Contains(r.Err, $"{methodName} (zip method {method})");
        Assert.IsFalse(r.Err.Contains("   at ", StringComparison.Ordinal), r.Err);
    }
}
