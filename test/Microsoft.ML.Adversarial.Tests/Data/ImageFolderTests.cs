using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Tests.Data;

[TestClass]
public sealed class ImageFolderTests
{
    [TestMethod]
    public void FashionMnistExportedAsPngsRoundTripsThroughImageAnalytics()
    {
        var mlContext = new MLContext(seed: 1);
        var source = TestData.Test(30);
        string folder = TestData.TempFolder();

        int written = mlContext.Data.SaveAsImageFolder(source.View(), folder);
        Assert.AreEqual(30, written);
        var classFolders = Directory.GetDirectories(folder).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToArray();
        Assert.AreEqual(10, classFolders.Length);
        CollectionAssert.Contains(classFolders, "T-shirt_top");
        Assert.AreEqual(0, Directory.GetFiles(folder, "*.tmp.png", SearchOption.AllDirectories).Length, "no temporary file may stay behind");

        IDataView loaded = mlContext.Data.LoadFromImageFolder(folder, height: 28, width: 28, grayscale: true);
        var pixelType = (VectorDataViewType)loaded.Schema["Pixels"].Type;
        CollectionAssert.AreEqual(new[] { 1, 28, 28 }, pixelType.Dimensions.ToArray());
        Assert.IsInstanceOfType<KeyDataViewType>(loaded.Schema["Label"].Type);

        // Match rows by class name and pixels: every exported image comes back with its class and its pixels.
        var sourceNames = TestData.KeyNames(source);
        var loadedNames = TestData.KeyNames(loaded);
        var expected = TestData.ReadVectors(source, "Pixels").Zip(TestData.ReadKeys(source), (p, k) => (Class: sourceNames[k - 1], Pixels: p)).ToList();
        var actual = TestData.ReadVectors(loaded, "Pixels").Zip(TestData.ReadKeys(loaded), (p, k) => (Class: loadedNames[k - 1], Pixels: p)).ToList();
        Assert.AreEqual(expected.Count, actual.Count);
        foreach (var (cls, pixels) in actual)
        {
            var match = expected.Where(e => e.Class == cls).Select(e => MaxAbsDiff(e.Pixels, pixels)).Min();
            Assert.IsTrue(match <= 1f / 255f + 1e-6f, $"an image of class {cls} came back with max pixel error {match}");
        }
    }

    [TestMethod]
    public void ColourImagesLoadAsThreeChannelsAtTheRequestedSize()
    {
        var mlContext = new MLContext(seed: 1);
        string folder = TestData.TempFolder();
        mlContext.Data.SaveAsImageFolder(TestData.Test(4).View(), folder);
        IDataView loaded = mlContext.Data.LoadFromImageFolder(folder, height: 32, width: 40);
        var type = (VectorDataViewType)loaded.Schema["Pixels"].Type;
        CollectionAssert.AreEqual(new[] { 3, 32, 40 }, type.Dimensions.ToArray());
        var rows = TestData.ReadVectors(loaded, "Pixels");
        Assert.AreEqual(4, rows.Count);
        Assert.IsTrue(rows.All(r => r.Length == 3 * 32 * 40 && r.All(v => v >= 0 && v <= 1)));
    }

    [TestMethod]
    public void EmptyOrMissingFoldersGiveClearErrors()
    {
        var mlContext = new MLContext();
        var missing = Assert.ThrowsExactly<DirectoryNotFoundException>(() => mlContext.Data.LoadFromImageFolder("/nonexistent/images"));
        StringAssert.Contains(missing.Message, "/nonexistent/images");

        string empty = TestData.TempFolder();
        var noClasses = Assert.ThrowsExactly<InvalidDataException>(() => mlContext.Data.LoadFromImageFolder(empty));
        StringAssert.Contains(noClasses.Message, "no sub-folders");

        Directory.CreateDirectory(Path.Combine(empty, "cat"));
        File.WriteAllText(Path.Combine(empty, "cat", "notes.txt"), "not an image");
        var noImages = Assert.ThrowsExactly<InvalidDataException>(() => mlContext.Data.LoadFromImageFolder(empty));
        StringAssert.Contains(noImages.Message, "no image files");
    }

    [TestMethod]
    public void SavingANonImageColumnNamesTheColumnAndTheExpectedShape()
    {
        var mlContext = new MLContext();
        var data = mlContext.Data.LoadFromEnumerable(new[] { new Row { Features = new float[4] } });
        var ex = Assert.ThrowsExactly<ArgumentException>(() => mlContext.Data.SaveAsImageFolder(data, TestData.TempFolder(), pixelColumnName: "Features"));
        StringAssert.Contains(ex.Message, "'Features'");
        StringAssert.Contains(ex.Message, "Vector<Single, C, H, W>");
    }

    private sealed class Row
    {
        [VectorType(4)] public float[] Features { get; set; } = Array.Empty<float>();
    }

    private static float MaxAbsDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();
}
