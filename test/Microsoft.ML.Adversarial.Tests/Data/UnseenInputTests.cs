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
}
