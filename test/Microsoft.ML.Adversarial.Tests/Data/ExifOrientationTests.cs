using System.Buffers.Binary;
using Microsoft.ML.Adversarial.Data;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>
/// Issue 27, item 2: a JPEG with an EXIF orientation (every phone photo) is read the way browsers and PIL's
/// <c>exif_transpose</c> show it. Each of the eight files below stores the same picture as a camera would for its
/// orientation tag, so all eight must read back as the upright picture.
/// </summary>
[TestClass]
public sealed class ExifOrientationTests
{
    public TestContext TestContext { get; set; } = null!;

    private const int W = 48, H = 32; // the picture as shown: wider than tall, so a missed quarter turn changes its shape

    /// <summary>The picture as shown: four quadrants of different colours (red, green / blue, white) and a black bar at the top left.</summary>
    private static SKColor Shown(int x, int y)
    {
        if (y < 4 && x < 16) return SKColors.Black;
        return (x < W / 2, y < H / 2) switch
        {
            (true, true) => SKColors.Red,
            (false, true) => SKColors.Lime,
            (true, false) => SKColors.Blue,
            _ => SKColors.White,
        };
    }

    /// <summary>
    /// The stored pixels for an orientation tag, from the EXIF specification's words (where the stored 0th row and 0th
    /// column appear in the picture as shown): 1 top/left, 2 top/right, 3 bottom/right, 4 bottom/left, 5 left/top,
    /// 6 right/top, 7 right/bottom, 8 left/bottom.
    /// </summary>
    private static SKBitmap Stored(int orientation)
    {
        bool swap = orientation >= 5;
        int sw = swap ? H : W, sh = swap ? W : H;
        var (row0, col0) = orientation switch
        {
            1 => ("top", "left"), 2 => ("top", "right"), 3 => ("bottom", "right"), 4 => ("bottom", "left"),
            5 => ("left", "top"), 6 => ("right", "top"), 7 => ("right", "bottom"), _ => ("left", "bottom"),
        };
        var bitmap = new SKBitmap(sw, sh, SKColorType.Rgba8888, SKAlphaType.Opaque);
        for (int r = 0; r < sh; r++)
            for (int c = 0; c < sw; c++)
            {
                int x, y;
                if (!swap)
                {
                    y = row0 == "top" ? r : H - 1 - r;
                    x = col0 == "left" ? c : W - 1 - c;
                }
                else
                {
                    x = row0 == "left" ? r : W - 1 - r; // stored rows run across the picture's columns
                    y = col0 == "top" ? c : H - 1 - c;
                }
                bitmap.SetPixel(c, r, Shown(x, y));
            }
        return bitmap;
    }

    /// <summary>A JPEG (SkiaSharp, quality 100) with an EXIF APP1 segment holding one IFD entry: Orientation (0x0112) = <paramref name="orientation"/>.</summary>
    internal static byte[] JpegWithOrientation(SKBitmap bitmap, int orientation)
    {
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 100);
        var jpeg = data.ToArray();
        var tiff = new byte[8 + 2 + 12 + 4];
        "MM"u8.CopyTo(tiff);
        BinaryPrimitives.WriteUInt16BigEndian(tiff.AsSpan(2), 42);
        BinaryPrimitives.WriteUInt32BigEndian(tiff.AsSpan(4), 8); // first IFD right after the header
        BinaryPrimitives.WriteUInt16BigEndian(tiff.AsSpan(8), 1); // one entry
        BinaryPrimitives.WriteUInt16BigEndian(tiff.AsSpan(10), 0x0112); // Orientation
        BinaryPrimitives.WriteUInt16BigEndian(tiff.AsSpan(12), 3); // SHORT
        BinaryPrimitives.WriteUInt32BigEndian(tiff.AsSpan(14), 1); // one value
        BinaryPrimitives.WriteUInt16BigEndian(tiff.AsSpan(18), (ushort)orientation); // left-justified in the 4-byte field
        var app1 = new List<byte> { 0xFF, 0xE1 };
        int length = 2 + 6 + tiff.Length;
        app1.Add((byte)(length >> 8));
        app1.Add((byte)length);
        app1.AddRange("Exif\0\0"u8.ToArray());
        app1.AddRange(tiff);
        return jpeg.Take(2).Concat(app1).Concat(jpeg.Skip(2)).ToArray(); // right after SOI
    }

    private static string EightOrientations()
    {
        string folder = TestData.TempFolder();
        for (int o = 1; o <= 8; o++)
        {
            Directory.CreateDirectory(Path.Combine(folder, $"o{o}"));
            using var stored = Stored(o);
            File.WriteAllBytes(Path.Combine(folder, $"o{o}", "photo.jpg"), JpegWithOrientation(stored, o));
        }
        return folder;
    }

    /// <summary>The upright picture read the same way (a PNG, no orientation), as the reference.</summary>
    private static float[] Reference(int height, int width)
    {
        string folder = TestData.TempFolder();
        Directory.CreateDirectory(Path.Combine(folder, "upright"));
        using (var bitmap = new SKBitmap(W, H, SKColorType.Rgba8888, SKAlphaType.Opaque))
        {
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++) bitmap.SetPixel(x, y, Shown(x, y));
            using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
            File.WriteAllBytes(Path.Combine(folder, "upright", "picture.png"), png.ToArray());
        }
        var source = ImageFolderSource.Open(new ImageFolderOptions { Folder = folder, Height = height, Width = width });
        var pixels = new float[3 * height * width];
        source.ReadPixels(new[] { 0 }, pixels);
        return pixels;
    }

    [TestMethod]
    [DataRow(16, 16, false)] // the CLI's square images, in memory (LoadFromImageFolder)
    [DataRow(16, 16, true)]  // and streamed (ImageFolderSource, what train/evaluate/attack read)
    [DataRow(16, 24, true)]  // a target of another shape than the stored pixels: the orientation comes before the resize
    public void AllEightExifOrientationsReadAsThePictureIsShown(int height, int width, bool streamed)
    {
        string folder = EightOrientations();
        var options = new ImageFolderOptions { Folder = folder, Height = height, Width = width };
        IImageSource source = streamed ? ImageFolderSource.Open(options) : ImageSetReader.Read(new MLContext().Data.LoadFromImageFolder(options));
        var reference = Reference(height, width);
        int size = 3 * height * width;
        var failures = new List<string>();
        for (int row = 0; row < source.RowCount; row++)
        {
            var pixels = new float[size];
            source.ReadPixels(new[] { row }, pixels);
            double mean = pixels.Zip(reference, (a, b) => Math.Abs(a - b)).Average();
            string name = source.ClassNames[(int)source.GetLabel(row)];
            TestContext.WriteLine($"{name}: mean |difference| from the upright picture {mean:F4}");
            // JPEG at quality 100 with chroma subsampling blurs the colour edges a little; a wrong turn or flip moves whole quadrants (~0.3 and more).
            if (mean > 0.03) failures.Add($"{name} ({mean:F3})");
        }
        Assert.AreEqual(8, source.RowCount);
        Assert.AreEqual(0, failures.Count, "read not as shown: " + string.Join(", ", failures));
    }
}
