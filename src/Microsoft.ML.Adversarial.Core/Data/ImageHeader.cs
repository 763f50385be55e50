using System.Buffers.Binary;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// Reads an image file's format and declared size from its first bytes, without decoding it, so that empty files,
/// files that are not images, and decompression bombs (a small file that declares a huge image) are refused with a
/// clear message before a decoder allocates memory for them.
/// </summary>
public static class ImageHeader
{
    /// <summary>Largest image accepted by default: 50 megapixels (about 7,000 x 7,000).</summary>
    public const long DefaultMaxPixels = 50_000_000;

    /// <summary>Format name and declared size, or null when the bytes are not a PNG, JPEG, GIF, BMP or WebP header.</summary>
    public static (string Format, int Width, int Height)? TryRead(string path)
    {
        using var f = File.OpenRead(path);
        var head = new byte[64];
        int n = f.Read(head, 0, head.Length);
        var h = head.AsSpan(0, n);
        if (n >= 24 && h[..8].SequenceEqual(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A }))
            return ("PNG", BinaryPrimitives.ReadInt32BigEndian(h[16..]), BinaryPrimitives.ReadInt32BigEndian(h[20..]));
        if (n >= 10 && h[0] == 'G' && h[1] == 'I' && h[2] == 'F')
            return ("GIF", BinaryPrimitives.ReadUInt16LittleEndian(h[6..]), BinaryPrimitives.ReadUInt16LittleEndian(h[8..]));
        if (n >= 26 && h[0] == 'B' && h[1] == 'M')
            return ("BMP", Math.Abs(BinaryPrimitives.ReadInt32LittleEndian(h[18..])), Math.Abs(BinaryPrimitives.ReadInt32LittleEndian(h[22..])));
        if (n >= 30 && h[..4].SequenceEqual("RIFF"u8) && h[8..12].SequenceEqual("WEBP"u8))
        {
            if (h[12..16].SequenceEqual("VP8X"u8))
                return ("WebP", 1 + (h[24] | h[25] << 8 | h[26] << 16), 1 + (h[27] | h[28] << 8 | h[29] << 16));
            if (h[12..16].SequenceEqual("VP8L"u8))
            {
                uint bits = BinaryPrimitives.ReadUInt32LittleEndian(h[21..]);
                return ("WebP", (int)(bits & 0x3FFF) + 1, (int)((bits >> 14) & 0x3FFF) + 1);
            }
            if (h[12..16].SequenceEqual("VP8 "u8))
                return ("WebP", BinaryPrimitives.ReadUInt16LittleEndian(h[26..]) & 0x3FFF, BinaryPrimitives.ReadUInt16LittleEndian(h[28..]) & 0x3FFF);
        }
        if (n >= 4 && h[0] == 0xFF && h[1] == 0xD8)
            return JpegSize(f);
        return null;
    }

    // JPEG: walk the segments to the first start-of-frame marker, which holds the size.
    private static (string, int, int)? JpegSize(FileStream f)
    {
        f.Position = 2;
        Span<byte> seg = stackalloc byte[9];
        while (true)
        {
            int b;
            do b = f.ReadByte(); while (b == 0xFF);
            if (b < 0) return null;
            int marker = b;
            if (marker is 0xD8 or 0x01 or (>= 0xD0 and <= 0xD7)) continue;
            if (f.Read(seg[..2]) < 2) return null;
            int length = BinaryPrimitives.ReadUInt16BigEndian(seg);
            if (length < 2) return null;
            bool startOfFrame = marker is >= 0xC0 and <= 0xCF and not 0xC4 and not 0xC8 and not 0xCC;
            if (startOfFrame)
            {
                if (f.Read(seg[..5]) < 5) return null;
                return ("JPEG", BinaryPrimitives.ReadUInt16BigEndian(seg[3..]), BinaryPrimitives.ReadUInt16BigEndian(seg[1..]));
            }
            f.Position += length - 2;
            if (f.Position >= f.Length) return null;
        }
    }

    /// <summary>Whether the file ends the way a complete file of its format does (PNG: IEND chunk; JPEG: EOI marker; GIF: trailer;
    /// BMP and WebP: the size in the header matches the file).</summary>
    public static bool LooksComplete(string path, string format, long length)
    {
        using var f = File.OpenRead(path);
        Span<byte> tail = stackalloc byte[12];
        Span<byte> head = stackalloc byte[8];
        if (length < 12) return false;
        f.Position = length - 12;
        f.ReadExactly(tail);
        f.Position = 0;
        f.ReadExactly(head);
        return format switch
        {
            "PNG" => tail[4..8].SequenceEqual("IEND"u8),
            // Some writers pad after the EOI marker; look for it near the end.
            "JPEG" => tail.IndexOf(new byte[] { 0xFF, 0xD9 }) >= 0,
            "GIF" => tail[^1] == 0x3B,
            "BMP" => BinaryPrimitives.ReadUInt32LittleEndian(head[2..]) <= length,
            "WebP" => BinaryPrimitives.ReadUInt32LittleEndian(head[4..]) + 8 <= length,
            _ => true,
        };
    }

    /// <summary>Throws a clear <see cref="InvalidDataException"/> for an empty, unrecognised, zero-sized or oversized image file.</summary>
    public static void Check(string path, long maxPixels = DefaultMaxPixels)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"Image file '{path}' does not exist.", path);
        if (info.Length == 0) throw new InvalidDataException($"Image file '{path}' is empty (0 bytes). Remove it or replace it with the image.");
        var header = TryRead(path) ?? throw new InvalidDataException(
            $"File '{path}' is not a PNG, JPEG, GIF, BMP or WebP image (its first bytes match none of them); it may be corrupt or another kind of file. Remove or convert it.");
        if (header.Width <= 0 || header.Height <= 0)
            throw new InvalidDataException($"Image file '{path}' declares a {header.Width} x {header.Height} {header.Format} image; the header is corrupt.");
        long pixels = (long)header.Width * header.Height;
        if (pixels > maxPixels)
            throw new InvalidDataException(
                $"Image file '{path}' declares a {header.Width} x {header.Height} {header.Format} image ({pixels / 1e6:F0} megapixels), over the limit of " +
                $"{maxPixels / 1e6:F0} megapixels. It may be a decompression bomb; if it is a real image, shrink it first or raise ImageFolderOptions.MaxPixels.");
        if (!LooksComplete(path, header.Format, info.Length))
            throw new InvalidDataException(
                $"Image file '{path}' is a truncated {header.Format} (its end-of-image marker is missing); decoders would fill the missing part " +
                "with blank pixels. Copy the file again or remove it.");
    }
}
