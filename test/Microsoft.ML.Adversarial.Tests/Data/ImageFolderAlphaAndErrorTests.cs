using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>Transparency and broken files in image folders, with PNGs written byte by byte (TestImages).</summary>
[TestClass]
public sealed class ImageFolderAlphaAndErrorTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Class "a": transparent and semi-transparent PNGs; class "b": an opaque RGB PNG. Files sort in this order.</summary>
    private static string AlphaFolder()
    {
        string root = TestData.TempFolder();
        Directory.CreateDirectory(Path.Combine(root, "a"));
        Directory.CreateDirectory(Path.Combine(root, "b"));
        File.WriteAllBytes(Path.Combine(root, "a", "1.png"), TestImages.Uniform(8, 8, 6, 255, 255, 255, 128)); // white, alpha 128
        File.WriteAllBytes(Path.Combine(root, "a", "2.png"), TestImages.Uniform(8, 8, 6, 255, 255, 255, 0));   // white, transparent
        File.WriteAllBytes(Path.Combine(root, "a", "3.png"), TestImages.Uniform(8, 8, 4, 200, 64));            // grey 200 + alpha 64
        File.WriteAllBytes(Path.Combine(root, "a", "4.png"), TestImages.Uniform(8, 8, 6, 40, 80, 120, 255));   // opaque RGBA
        File.WriteAllBytes(Path.Combine(root, "b", "5.png"), TestImages.Uniform(8, 8, 2, 10, 100, 200));       // RGB, no alpha
        return root;
    }

    private static List<float[]> Load(string root, bool grayscale, float? background = null, ImageResizingEstimator.ResizingKind resizing = ImageResizingEstimator.ResizingKind.IsoCrop)
    {
        var options = new ImageFolderOptions { Folder = root, Height = 8, Width = 8, Grayscale = grayscale, Resizing = resizing };
        if (background is { } b) options.Background = b;
        return TestData.ReadVectors(new MLContext().Data.LoadFromImageFolder(options), "Pixels");
    }

    private static void AssertUniform(float[] image, int channels, double[] expected, string what)
    {
        Assert.AreEqual(channels * 64, image.Length, what);
        for (int c = 0; c < channels; c++)
            for (int p = 0; p < 64; p++)
                Assert.AreEqual(expected[c] / 255, image[c * 64 + p], 1.0 / 255, $"{what}: channel {c} pixel {p} is {image[c * 64 + p] * 255:F1}, expected {expected[c]:F1}");
    }

    [TestMethod]
    public void SemiTransparentPixelsAreCompositedOnWhiteByDefault()
    {
        var rgb = Load(AlphaFolder(), grayscale: false);
        AssertUniform(rgb[0], 3, new[] { 255.0, 255, 255 }, "white at alpha 128 (was read as 128: premultiplied)");
        AssertUniform(rgb[1], 3, new[] { 255.0, 255, 255 }, "transparent white (was read as black)");
        double g = 200 * 64 / 255.0 + 255 * (1 - 64 / 255.0);
        AssertUniform(rgb[2], 3, new[] { g, g, g }, "grey 200 at alpha 64 over white");
        AssertUniform(rgb[3], 3, new[] { 40.0, 80, 120 }, "opaque RGBA is unchanged");
        AssertUniform(rgb[4], 3, new[] { 10.0, 100, 200 }, "RGB without alpha is unchanged");

        var grey = Load(AlphaFolder(), grayscale: true);
        AssertUniform(grey[1], 1, new[] { 255.0 }, "grey: transparent white");
        AssertUniform(grey[2], 1, new[] { g }, "grey: grey 200 at alpha 64 over white");
    }

    [TestMethod]
    public void TheBackgroundCanBeBlackAndIsValidated()
    {
        var rgb = Load(AlphaFolder(), grayscale: false, background: 0f);
        AssertUniform(rgb[0], 3, new[] { 128.0, 128, 128 }, "white at alpha 128 over black");
        AssertUniform(rgb[1], 3, new[] { 0.0, 0, 0 }, "transparent over black");
        AssertUniform(rgb[4], 3, new[] { 10.0, 100, 200 }, "RGB without alpha is unchanged");
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Load(AlphaFolder(), grayscale: false, background: 2f));
        StringAssert.Contains(e.Message, "Background is 2");
    }

    [TestMethod]
    public void IsoPadPaddingIsTheBackground()
    {
        string root = TestData.TempFolder();
        Directory.CreateDirectory(Path.Combine(root, "a"));
        Directory.CreateDirectory(Path.Combine(root, "b"));
        File.WriteAllBytes(Path.Combine(root, "a", "wide.png"), TestImages.Uniform(8, 4, 2, 10, 100, 200));
        File.WriteAllBytes(Path.Combine(root, "b", "square.png"), TestImages.Uniform(8, 8, 2, 10, 100, 200));
        var image = Load(root, grayscale: false, resizing: ImageResizingEstimator.ResizingKind.IsoPad)[0];
        Assert.AreEqual(1f, image[0], 1f / 255, "top-left is padding: white");
        Assert.AreEqual(10f / 255, image[4 * 8 + 4], 1f / 255, "the middle is the image");
    }

    [TestMethod]
    public void ACorruptImageInTheMiddleOfAFolderIsNamedInsteadOfReadAsBlankPixels()
    {
        string root = AlphaFolder();
        // Valid signature, header, CRCs and end chunk; garbage pixel data. SkiaSharp's Decode (ML.NET's path) returns black for it.
        string victim = Path.Combine(root, "a", "3.png");
        File.WriteAllBytes(victim, TestImages.CorruptPixelData(8, 8));
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageSetReader.Read(new MLContext().Data.LoadFromImageFolder(root, 8, 8)));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, victim);
        StringAssert.Contains(e.Message, "corrupt");
    }

    [TestMethod]
    public void AFileThatBreaksAfterLoadingIsNamedWhenRowsAreRead()
    {
        string root = AlphaFolder();
        var view = new MLContext().Data.LoadFromImageFolder(root, 8, 8);
        // The view reads lazily; the file breaks between loading and reading (a sync, another process).
        string victim = Path.Combine(root, "a", "2.png");
        File.WriteAllText(victim, "no longer an image");
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ImageSetReader.Read(view));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, victim);
        Assert.IsFalse(e.Message.Contains("Splitter/consolidator", StringComparison.Ordinal), e.Message);
    }

    [TestMethod]
    public void TheImagePathColumnHoldsEachFilesRelativePath()
    {
        var view = new MLContext().Data.LoadFromImageFolder(AlphaFolder(), 8, 8);
        var column = view.Schema.GetColumnOrNull("ImagePath");
        Assert.IsNotNull(column, $"ImagePath is documented but missing; columns: {string.Join(", ", view.Schema.Select(c => c.Name))}");
        using var cursor = view.GetRowCursor(new[] { column.Value });
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column.Value);
        var paths = new List<string>();
        var value = default(ReadOnlyMemory<char>);
        while (cursor.MoveNext()) { getter(ref value); paths.Add(value.ToString()); }
        CollectionAssert.AreEqual(new[] { "a/1.png", "a/2.png", "a/3.png", "a/4.png", "b/5.png" }, paths);
    }
}
