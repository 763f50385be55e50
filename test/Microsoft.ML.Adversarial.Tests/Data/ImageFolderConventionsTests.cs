using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>
/// Issue 14: <c>LoadFromImageFolder</c> runs in the caller's MLContext with the CLI's default size, and
/// <c>SaveAsImageFolder</c> keeps source file names and class names ("T-shirt/top"), so a written folder reads back as
/// the data it came from and clean and adversarial copies pair by name.
/// </summary>
[TestClass]
public sealed class ImageFolderConventionsTests
{
    private static string Written(int count, out ImageSet source)
    {
        source = TestData.Test(count);
        string folder = TestData.TempFolder();
        new MLContext(seed: 1).Data.SaveAsImageFolder(source.View(), folder);
        return folder;
    }

    [TestMethod]
    public void ClassNamesAndTheirOrderRoundTrip()
    {
        string folder = Written(20, out var source);
        CollectionAssert.Contains(Directory.GetDirectories(folder).Select(Path.GetFileName).ToList(), "T-shirt_top", "the folder is file-system safe");
        var ml = new MLContext(seed: 1);
        var loaded = ml.Data.LoadFromImageFolder(folder, 28, 28, grayscale: true);
        CollectionAssert.AreEqual(TestData.KeyNames(source), TestData.KeyNames(loaded), "the same key values, in the same order");
        CollectionAssert.AreEqual(FashionMnist.ClassNames.ToArray(), ImageFolder.Scan(folder).Classes.ToArray());
        // Every row keeps its class: counts per class name agree.
        var names = TestData.KeyNames(loaded);
        var sourceNames = TestData.KeyNames(source);
        CollectionAssert.AreEquivalent(TestData.ReadKeys(source).Select(k => sourceNames[k - 1]).ToList(), TestData.ReadKeys(loaded).Select(k => names[k - 1]).ToList());
    }

    [TestMethod]
    public void SavingWhatWasLoadedKeepsTheSourceFileNames()
    {
        string folder = Written(12, out _);
        var ml = new MLContext(seed: 1);
        var loaded = ml.Data.LoadFromImageFolder(folder, 28, 28, grayscale: true);
        string copy = TestData.TempFolder();
        Assert.AreEqual(12, ml.Data.SaveAsImageFolder(loaded, copy));
        static string[] Files(string root) => Directory.GetFiles(root, "*.png", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(root, f)).Order(StringComparer.Ordinal).ToArray();
        CollectionAssert.AreEqual(Files(folder), Files(copy), "each image keeps its class folder and file name");
        // And the pixels under each name are the source's (the pairing is right, not just the names).
        var first = Files(folder)[0];
        var a = MLImage.CreateFromFile(Path.Combine(folder, first));
        var b = MLImage.CreateFromFile(Path.Combine(copy, first));
        CollectionAssert.AreEqual(a.GetBGRPixels.ToArray(), b.GetBGRPixels.ToArray());
    }

    [TestMethod]
    public void TheDefaultSizeIsTheClisAndTheCallersContextDoesTheWork()
    {
        string folder = Written(10, out _);
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.Source); };
        var loaded = ml.Data.LoadFromImageFolder(folder);
        Assert.AreEqual(ImageFolderOptions.DefaultSize, 32);
        CollectionAssert.AreEqual(new[] { 3, 32, 32 }, ((VectorDataViewType)loaded.Schema["Pixels"].Type).Dimensions.ToArray());
        Assert.AreEqual(10, TestData.ReadVectors(loaded, "Pixels").Count);
        lock (messages) Assert.IsTrue(messages.Count > 0, "the loading pipeline logs to the caller's MLContext");
    }
}
