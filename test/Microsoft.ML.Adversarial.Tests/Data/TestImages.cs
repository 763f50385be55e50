using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>
/// Writes PNG files byte by byte (straight, non-premultiplied alpha exactly as given), so tests control every pixel,
/// alpha included, without going through the decoder under test.
/// </summary>
internal static class TestImages
{
    /// <summary>An 8-bit PNG: colour type 0 (grey, 1 byte/pixel), 2 (RGB), 4 (grey + alpha) or 6 (RGBA); rows top to bottom.</summary>
    public static byte[] Png(int width, int height, int colorType, byte[] pixels)
    {
        int bpp = colorType switch { 0 => 1, 2 => 3, 4 => 2, 6 => 4, _ => throw new ArgumentOutOfRangeException(nameof(colorType)) };
        if (pixels.Length != width * height * bpp) throw new ArgumentException($"expected {width * height * bpp} bytes, got {pixels.Length}");
        var raw = new byte[height * (1 + width * bpp)];
        for (int y = 0; y < height; y++)
            Array.Copy(pixels, y * width * bpp, raw, y * (1 + width * bpp) + 1, width * bpp); // filter 0 (none) per row
        using var z = new MemoryStream();
        using (var zlib = new ZLibStream(z, CompressionLevel.Optimal, leaveOpen: true)) zlib.Write(raw);
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        ihdr[8] = 8;
        ihdr[9] = (byte)colorType;
        using var png = new MemoryStream();
        png.Write(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A });
        Chunk(png, "IHDR", ihdr);
        Chunk(png, "IDAT", z.ToArray());
        Chunk(png, "IEND", Array.Empty<byte>());
        return png.ToArray();
    }

    /// <summary>A PNG whose every pixel is the same (bytes per pixel as for <see cref="Png"/>).</summary>
    public static byte[] Uniform(int width, int height, int colorType, params byte[] pixel)
    {
        var pixels = new byte[width * height * pixel.Length];
        for (int i = 0; i < width * height; i++) pixel.CopyTo(pixels, i * pixel.Length);
        return Png(width, height, colorType, pixels);
    }

    /// <summary>
    /// A PNG with a valid signature, header, CRCs and end chunk whose compressed pixel data is garbage: it passes every
    /// header check and fails only in the decoder.
    /// </summary>
    public static byte[] CorruptPixelData(int width, int height)
    {
        var png = Uniform(width, height, 0, 128);
        using var s = new MemoryStream();
        var ihdr = png.AsSpan(16, 13).ToArray();
        s.Write(png, 0, 8);
        Chunk(s, "IHDR", ihdr);
        var garbage = new byte[64];
        new Random(5).NextBytes(garbage);
        garbage[0] = 0x78; garbage[1] = 0x9C; // a zlib header, then nonsense
        Chunk(s, "IDAT", garbage);
        Chunk(s, "IEND", Array.Empty<byte>());
        return s.ToArray();
    }

    private static void Chunk(Stream s, string type, byte[] data)
    {
        Span<byte> four = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(four, data.Length);
        s.Write(four);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        s.Write(typeBytes);
        s.Write(data);
        BinaryPrimitives.WriteUInt32BigEndian(four, Crc32(typeBytes.Concat(data).ToArray()));
        s.Write(four);
    }

    private static uint Crc32(byte[] bytes)
    {
        uint c = 0xFFFFFFFF;
        foreach (byte b in bytes)
        {
            c ^= b;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
        }
        return ~c;
    }
}
