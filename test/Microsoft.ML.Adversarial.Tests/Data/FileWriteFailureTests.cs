using Microsoft.ML.Adversarial.IO;
using Microsoft.ML.Adversarial.Data;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>Class names that are not folder names, and writes that fail on a full disk.</summary>
[TestClass]
public sealed class FileWriteFailureTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Class names a model file may carry that are not usable folder names as they are.</summary>
    internal static readonly string[] HostileClassNames = { "..", "", ".", "a/b", "a_b", "../../escape", ".hidden", "Cat", "cat", "Trouser" };

    [TestMethod]
    public void ClassNamesBecomeSafeDistinctFolderNames()
    {
        var names = ClassMatch.FolderNames(HostileClassNames, ImageFolder.MissingFolder);
        CollectionAssert.AreEqual(
            new[] { "_..", "_", "_.", "a_b", "a_b~4", "_.._.._escape", "_.hidden", "Cat", "cat~8", "Trouser" }, names.ToArray());
        // Ordinary names are kept as they are, and the Fashion-MNIST name with a slash keeps its documented form.
        Assert.AreEqual("T-shirt_top", ClassMatch.FolderName("T-shirt/top"));
        Assert.AreEqual("Ankle boot", ClassMatch.FolderName("Ankle boot"));
        // A name too long for a file name is shortened, and two long names stay distinct.
        string a = ClassMatch.FolderName(new string('x', 300) + "a"), b = ClassMatch.FolderName(new string('x', 300) + "b");
        Assert.IsTrue(System.Text.Encoding.UTF8.GetByteCount(a) <= 255 && a.StartsWith("xxxx", StringComparison.Ordinal) && a != b, $"{a} / {b}");
    }

    [TestMethod]
    public void SavedImagesStayInsideTheFolderWhateverTheClassNames()
    {
        string dir = TestData.TempFolder();
        string output = Path.Combine(dir, "a", "out");
        var labels = Enumerable.Range(0, HostileClassNames.Length).Select(i => (uint)i).ToArray();
        var data = ImageSet.FromFloats(new float[labels.Length * 4 * 4], labels, HostileClassNames, (1, 4, 4)).View();

        Assert.AreEqual(labels.Length, ImageFolder.Save(data, output));

        var all = Directory.GetFiles(dir, "*", SearchOption.AllDirectories);
        Assert.IsTrue(all.All(f => Path.GetDirectoryName(Path.GetDirectoryName(f)) == output || f == Path.Combine(output, ClassMatch.ClassNamesFile)),
            "every image is in a class folder of the output, and the class-name file at its top: " + string.Join(", ", all));
        Assert.AreEqual(HostileClassNames.Length, Directory.GetDirectories(output).Length, "distinct classes give distinct folders");
        // Read back, every class folder is a class (none is hidden), under its own name and in its order (the empty name
        // keeps its folder's, "_": ML.NET reads empty text as a missing key).
        CollectionAssert.AreEqual(HostileClassNames.Select(n => n.Length == 0 ? "_" : n).ToArray(), ImageFolder.Scan(output).Classes.ToArray());
    }

    [TestMethod]
    public void SaveIdxWriteAndTheWriteProbeLeaveNoTemporaryFileOnAFullDisk()
    {
        using var fs = Tmpfs.MountOrSkip(256 * 1024);
        fs.FillLeaving(64 * 1024);

        var e = Assert.ThrowsExactly<IOException>(() => IdxFile.Write(Path.Combine(fs.Root, "images-idx-ubyte"), new[] { 500, 28, 28 }, new byte[500 * 28 * 28]));
        TestContext.WriteLine(e.Message);
        AssertOnlyFillers(fs.Root);

        var rng = new Random(1);
        var noise = Enumerable.Range(0, 200 * 64 * 64).Select(_ => (float)rng.NextDouble()).ToArray();
        var data = ImageSet.FromFloats(noise, new uint[200], new[] { "only" }, (1, 64, 64)).View();
        Assert.ThrowsExactly<IOException>(() => ImageFolder.Save(data, Path.Combine(fs.Root, "png")));
        Assert.AreEqual(0, Directory.GetFiles(fs.Root, ".*", SearchOption.AllDirectories).Length, "no temporary PNG may stay behind");

        // The probe writes as many bytes as asked, so a folder with too little room fails it, and leaves nothing.
        var probe = Assert.ThrowsExactly<IOException>(() => AtomicFile.EnsureWritableFolder(Path.Combine(fs.Root, "probe"), 1024 * 1024));
        StringAssert.Contains(probe.Message, Path.Combine(fs.Root, "probe"));
        Assert.AreEqual(0, Directory.GetFiles(Path.Combine(fs.Root, "probe")).Length);
        Directory.Delete(Path.Combine(fs.Root, "png"), recursive: true);
        AtomicFile.EnsureWritableFolder(Path.Combine(fs.Root, "probe"), 4096);
    }

    private static void AssertOnlyFillers(string root)
    {
        var left = Directory.GetFiles(root, "*", SearchOption.AllDirectories).Where(f => !Path.GetFileName(f).StartsWith("filler-", StringComparison.Ordinal)).ToArray();
        Assert.AreEqual(0, left.Length, "left behind: " + string.Join(", ", left));
    }
}
