using System.IO.Compression;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Tests.Data;

[TestClass]
public sealed class FashionMnistTests
{
    [TestMethod]
    public void TestSplitLoadsAllRowsWithKeyLabelsAndUnitRangePixels()
    {
        var mlContext = new MLContext(seed: 1);
        IDataView data = mlContext.Data.LoadFromFashionMnist(FashionMnistSplit.Test, folder: TestData.Folder);

        Assert.AreEqual(10_000L, data.GetRowCount());
        var label = data.Schema["Label"];
        Assert.IsInstanceOfType<KeyDataViewType>(label.Type);
        Assert.AreEqual(10UL, ((KeyDataViewType)label.Type).Count);
        CollectionAssert.AreEqual(FashionMnist.ClassNames.ToArray(), TestData.KeyNames(data));

        var pixels = (VectorDataViewType)data.Schema["Pixels"].Type;
        CollectionAssert.AreEqual(new[] { 1, 28, 28 }, pixels.Dimensions.ToArray());
        Assert.AreEqual(NumberDataViewType.Single, pixels.ItemType);

        var rows = TestData.ReadVectors(data, "Pixels");
        Assert.IsTrue(rows.All(r => r.All(v => v >= 0f && v <= 1f)), "pixels must lie in [0, 1]");
        Assert.IsTrue(rows.Take(100).All(r => r.Max() > 0.5f), "real images have bright pixels");
        // The standard test set has 1,000 images of each class.
        var counts = TestData.ReadKeys(data).GroupBy(k => k).ToDictionary(g => g.Key, g => g.Count());
        Assert.AreEqual(10, counts.Count);
        Assert.IsTrue(counts.Values.All(c => c == 1000));
    }

    [TestMethod]
    public void FirstSubsetKeepsFileOrderAndStratifiedSubsetBalancesClasses()
    {
        var first = TestData.Train(50, SubsetMode.First);
        var all = TestData.Train(200, SubsetMode.First);
        Assert.AreEqual(50, first.RowCount);
        CollectionAssert.AreEqual(TestData.ReadKeys(all).Take(50).ToList(), TestData.ReadKeys(first));
        CollectionAssert.AreEqual(TestData.ReadVectors(all, "Pixels")[7], TestData.ReadVectors(first, "Pixels")[7]);

        var stratified = TestData.Train(53, SubsetMode.Stratified);
        var perClass = TestData.ReadKeys(stratified).GroupBy(k => k).Select(g => g.Count()).ToList();
        Assert.AreEqual(10, perClass.Count);
        Assert.IsTrue(perClass.All(c => c == 5 || c == 6), string.Join(",", perClass));
        Assert.AreEqual(53, perClass.Sum());
    }

    [TestMethod]
    public void ReadsUncompressedFilesTheSameAsGzipped()
    {
        string dir = TestData.TempFolder();
        foreach (string name in new[] { "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte" })
        {
            using var src = new GZipStream(File.OpenRead(Path.Combine(TestData.Folder, name + ".gz")), CompressionMode.Decompress);
            using var dst = File.Create(Path.Combine(dir, name));
            src.CopyTo(dst);
        }
        var plain = FashionMnist.Load(new FashionMnistOptions { Folder = dir, Split = FashionMnistSplit.Test, Count = 20 });
        var gz = TestData.Test(20, SubsetMode.First);
        CollectionAssert.AreEqual(TestData.ReadKeys(gz), TestData.ReadKeys(plain));
        CollectionAssert.AreEqual(TestData.ReadVectors(gz, "Pixels")[19], TestData.ReadVectors(plain, "Pixels")[19]);
    }

    [TestMethod]
    public void MissingFolderNamesTheFolderAndTheFix()
    {
        var ex = Assert.ThrowsExactly<DirectoryNotFoundException>(() =>
            FashionMnist.Load(new FashionMnistOptions { Folder = "/nonexistent/fmnist" }));
        StringAssert.Contains(ex.Message, "/nonexistent/fmnist");
        StringAssert.Contains(ex.Message, "dataset-fashion-mnist");
    }

    [TestMethod]
    public void MissingFileNamesTheFile()
    {
        string dir = TestData.TempFolder();
        File.Copy(Path.Combine(TestData.Folder, "t10k-images-idx3-ubyte.gz"), Path.Combine(dir, "t10k-images-idx3-ubyte.gz"));
        var ex = Assert.ThrowsExactly<FileNotFoundException>(() =>
            FashionMnist.Load(new FashionMnistOptions { Folder = dir, Split = FashionMnistSplit.Test }));
        StringAssert.Contains(ex.Message, "t10k-labels-idx1-ubyte");
        StringAssert.Contains(ex.Message, dir);
    }

    [TestMethod]
    public void TruncatedFileIsReportedWithItsPath()
    {
        string dir = TestData.TempFolder();
        byte[] images = Decompress(Path.Combine(TestData.Folder, "t10k-images-idx3-ubyte.gz"));
        File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte"), images.AsSpan(0, images.Length / 2).ToArray());
        File.Copy(Path.Combine(TestData.Folder, "t10k-labels-idx1-ubyte.gz"), Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() =>
            FashionMnist.Load(new FashionMnistOptions { Folder = dir, Split = FashionMnistSplit.Test }));
        StringAssert.Contains(ex.Message, "t10k-images-idx3-ubyte");
        StringAssert.Contains(ex.Message, "truncated");
    }

    [TestMethod]
    public void TruncatedGzipIsReportedWithItsPath()
    {
        string dir = TestData.TempFolder();
        byte[] gz = File.ReadAllBytes(Path.Combine(TestData.Folder, "t10k-images-idx3-ubyte.gz"));
        File.WriteAllBytes(Path.Combine(dir, "t10k-images-idx3-ubyte.gz"), gz.AsSpan(0, gz.Length / 3).ToArray());
        File.Copy(Path.Combine(TestData.Folder, "t10k-labels-idx1-ubyte.gz"), Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() =>
            FashionMnist.Load(new FashionMnistOptions { Folder = dir, Split = FashionMnistSplit.Test }));
        StringAssert.Contains(ex.Message, "t10k-images-idx3-ubyte.gz");
    }

    [TestMethod]
    public void WrongMagicNumberIsReported()
    {
        string dir = TestData.TempFolder();
        // A label file where the image file should be: magic 0x801 instead of 0x803.
        File.Copy(Path.Combine(TestData.Folder, "t10k-labels-idx1-ubyte.gz"), Path.Combine(dir, "t10k-images-idx3-ubyte.gz"));
        File.Copy(Path.Combine(TestData.Folder, "t10k-labels-idx1-ubyte.gz"), Path.Combine(dir, "t10k-labels-idx1-ubyte.gz"));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() =>
            FashionMnist.Load(new FashionMnistOptions { Folder = dir, Split = FashionMnistSplit.Test }));
        StringAssert.Contains(ex.Message, "t10k-images-idx3-ubyte.gz");
        StringAssert.Contains(ex.Message, "0x00000801");
        StringAssert.Contains(ex.Message, "0x00000803");
    }

    [TestMethod]
    public void MismatchedImageAndLabelCountsAreReported()
    {
        string dir = TestData.TempFolder();
        File.Copy(Path.Combine(TestData.Folder, "t10k-images-idx3-ubyte.gz"), Path.Combine(dir, "t10k-images-idx3-ubyte.gz"));
        byte[] labels = Decompress(Path.Combine(TestData.Folder, "t10k-labels-idx1-ubyte.gz"));
        IdxFile.Write(Path.Combine(dir, "t10k-labels-idx1-ubyte"), new[] { 9_000 }, labels.AsSpan(8, 9_000));
        var ex = Assert.ThrowsExactly<InvalidDataException>(() =>
            FashionMnist.Load(new FashionMnistOptions { Folder = dir, Split = FashionMnistSplit.Test }));
        StringAssert.Contains(ex.Message, "10000 images");
        StringAssert.Contains(ex.Message, "9000 labels");
    }

    [TestMethod]
    public void IdxWriteThenReadRoundTrips()
    {
        string path = Path.Combine(TestData.TempFolder(), "x-idx3-ubyte.gz");
        var data = Enumerable.Range(0, 2 * 3 * 4).Select(i => (byte)(i * 7)).ToArray();
        IdxFile.Write(path, new[] { 2, 3, 4 }, data);
        var back = IdxFile.Read(path, 3);
        CollectionAssert.AreEqual(new[] { 2, 3, 4 }, back.Dimensions);
        CollectionAssert.AreEqual(data, back.Data);
        Assert.IsFalse(File.Exists(path + ".tmp"));
    }

    private static byte[] Decompress(string path)
    {
        using var src = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        using var ms = new MemoryStream();
        src.CopyTo(ms);
        return ms.ToArray();
    }
}
