using System.Buffers.Binary;
using System.IO.Compression;
using Microsoft.ML.Adversarial.IO;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// Reads and writes the IDX format of MNIST and Fashion-MNIST, plain or gzip-compressed: unsigned-byte payloads, and
/// labels files of unsigned bytes, 16-bit or 32-bit big-endian integers (<see cref="WriteLabels"/>, <see cref="ReadLabels"/>).
/// Every failure names the file and says what to do.
/// </summary>
public static class IdxFile
{
    // IDX type codes: the third byte of the magic number.
    private const int UnsignedByteType = 0x08, Int16Type = 0x0B, Int32Type = 0x0C;

    /// <summary>Magic number of an unsigned-byte IDX file with the given number of dimensions.</summary>
    public static int MagicFor(int dimensions) => MagicFor(UnsignedByteType, dimensions);

    private static int MagicFor(int type, int dimensions) => type << 8 | dimensions;

    /// <summary>An IDX payload: its dimensions and raw bytes (row-major).</summary>
    public sealed record Content(int[] Dimensions, byte[] Data);

    /// <summary>Reads an unsigned-byte IDX file with exactly <paramref name="expectedDimensions"/> dimensions.</summary>
    public static Content Read(string path, int expectedDimensions) => Read(path, expectedDimensions, UnsignedByteType).Content;

    /// <summary>
    /// Reads a labels file (one dimension): unsigned bytes (MNIST's type, 0x08), or 16-bit (0x0B) or 32-bit (0x0C)
    /// big-endian integers as <see cref="WriteLabels"/> writes for class indices past 255. A negative label is refused.
    /// </summary>
    public static uint[] ReadLabels(string path)
    {
        var (type, content) = Read(path, 1, UnsignedByteType, Int16Type, Int32Type);
        var data = content.Data;
        int width = type switch { Int16Type => 2, Int32Type => 4, _ => 1 };
        if (data.Length % width != 0)
            throw new InvalidDataException($"IDX file '{path}' is truncated: its {data.Length} data bytes are not whole {width}-byte labels. Reinstall or re-download it.");
        var labels = new uint[data.Length / width];
        for (int i = 0; i < labels.Length; i++)
        {
            int v = width switch
            {
                1 => data[i],
                2 => BinaryPrimitives.ReadInt16BigEndian(data.AsSpan(2 * i)),
                _ => BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(4 * i)),
            };
            if (v < 0) throw new InvalidDataException($"IDX file '{path}' has label {v} at row {i}; class indices are 0 or more. The file is corrupt or not a labels file.");
            labels[i] = (uint)v;
        }
        return labels;
    }

    /// <summary>
    /// Writes a labels file, atomically: unsigned bytes (type 0x08, what MNIST readers expect) when every label is
    /// at most 255, otherwise 32-bit big-endian integers (type 0x0C), so no class index ever wraps.
    /// </summary>
    public static void WriteLabels(string path, ReadOnlySpan<uint> labels)
    {
        uint max = 0;
        foreach (uint l in labels) max = Math.Max(max, l);
        if (max > int.MaxValue) throw new ArgumentException($"Label {max} does not fit an IDX labels file (at most {int.MaxValue}).", nameof(labels));
        if (max <= byte.MaxValue)
        {
            var bytes = new byte[labels.Length];
            for (int i = 0; i < labels.Length; i++) bytes[i] = (byte)labels[i];
            Write(path, UnsignedByteType, new[] { labels.Length }, bytes);
            return;
        }
        var words = new byte[4L * labels.Length];
        for (int i = 0; i < labels.Length; i++) BinaryPrimitives.WriteInt32BigEndian(words.AsSpan(4 * i), (int)labels[i]);
        Write(path, Int32Type, new[] { labels.Length }, words);
    }

    private static (int Type, Content Content) Read(string path, int expectedDimensions, params int[] types)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"IDX file '{path}' does not exist.", path);
        using var file = File.OpenRead(path);
        using var stream = IsGzip(file) ? new GZipStream(file, CompressionMode.Decompress) : (Stream)file;
        try
        {
            Span<byte> header = stackalloc byte[4];
            ReadExactly(stream, header, path, "the 4-byte magic number");
            int magic = BinaryPrimitives.ReadInt32BigEndian(header);
            int expectedMagic = MagicFor(expectedDimensions);
            int type = types.FirstOrDefault(t => magic == MagicFor(t, expectedDimensions));
            if (type == 0)
                throw new InvalidDataException(
                    $"IDX file '{path}' has magic number 0x{magic:X8}; expected 0x{expectedMagic:X8} " +
                    $"(unsigned bytes, {expectedDimensions} dimension(s)). The file is not the IDX file expected here " +
                    "(labels and images swapped, or another format): point the loader at the standard files.");
            var dims = new int[expectedDimensions];
            long total = 1;
            for (int i = 0; i < expectedDimensions; i++)
            {
                ReadExactly(stream, header, path, $"dimension {i} of the header");
                dims[i] = BinaryPrimitives.ReadInt32BigEndian(header);
                if (dims[i] < 0)
                    throw new InvalidDataException($"IDX file '{path}' declares a negative size {dims[i]} for dimension {i}; the file is corrupt: reinstall or re-download it.");
                total *= dims[i];
            }
            total *= type switch { Int16Type => 2, Int32Type => 4, _ => 1 }; // bytes per value
            if (total > Array.MaxLength)
                throw new InvalidDataException($"IDX file '{path}' declares {total} bytes of data, more than one array can hold; the header is corrupt.");
            var data = new byte[total];
            int read = ReadUpTo(stream, data);
            if (read < total)
                throw new InvalidDataException(
                    $"IDX file '{path}' is truncated: its header declares {total} bytes of data ({string.Join(" x ", dims)}) " +
                    $"but only {read} follow. Reinstall the data (Debian: apt-get install --reinstall dataset-fashion-mnist) or re-download the file.");
            return (type, new Content(dims, data));
        }
        catch (InvalidDataException ex) when (!ex.Message.Contains(path, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"IDX file '{path}' could not be decompressed ({ex.Message}); it is corrupt or truncated: reinstall or re-download it.", ex);
        }
    }

    /// <summary>Writes an unsigned-byte IDX file (gzip-compressed when the path ends in .gz), atomically.</summary>
    public static void Write(string path, int[] dimensions, ReadOnlySpan<byte> data)
    {
        long total = 1;
        foreach (int d in dimensions) total *= d;
        if (total != data.Length)
            throw new ArgumentException($"IDX dimensions {string.Join(" x ", dimensions)} need {total} bytes, but {data.Length} were given.", nameof(data));
        Write(path, UnsignedByteType, dimensions, data.ToArray()); // a span cannot enter the lambda
    }

    private static void Write(string path, int type, int[] dimensions, byte[] bytes)
    {
        // Temporary file, then rename (AtomicFile): a failed write (full disk) leaves neither a partial file nor the temporary one.
        AtomicFile.Write(path, file =>
        {
            using var stream = path.EndsWith(".gz", StringComparison.OrdinalIgnoreCase) ? new GZipStream(file, CompressionLevel.Optimal, leaveOpen: true) : (Stream)file;
            Span<byte> word = stackalloc byte[4];
            BinaryPrimitives.WriteInt32BigEndian(word, MagicFor(type, dimensions.Length));
            stream.Write(word);
            foreach (int d in dimensions)
            {
                BinaryPrimitives.WriteInt32BigEndian(word, d);
                stream.Write(word);
            }
            stream.Write(bytes);
        });
    }

    private static bool IsGzip(FileStream file)
    {
        Span<byte> magic = stackalloc byte[2];
        int n = file.Read(magic);
        file.Position = 0;
        return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
    }

    private static void ReadExactly(Stream stream, Span<byte> buffer, string path, string what)
    {
        int read = ReadUpTo(stream, buffer);
        if (read < buffer.Length)
            throw new InvalidDataException($"IDX file '{path}' is truncated: it ends before {what}. Reinstall or re-download it.");
    }

    private static int ReadUpTo(Stream stream, Span<byte> buffer)
    {
        int total = 0;
        while (total < buffer.Length)
        {
            int n = stream.Read(buffer[total..]);
            if (n == 0) break;
            total += n;
        }
        return total;
    }
}
