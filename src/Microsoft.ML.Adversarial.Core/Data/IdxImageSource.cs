using System.Buffers;
using System.Buffers.Binary;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Win32.SafeHandles;
using Microsoft.ML.Adversarial.IO;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// An IDX image file (unsigned bytes, N x H x W, as MNIST and Fashion-MNIST) read row by row at its offset, never
/// loaded whole: memory holds the labels (one number a row) and nothing of the pixels, which read as value / 255 like
/// <see cref="ImageSet.FromBytes"/>. Reads are positional (<see cref="RandomAccess"/>), so the prefetching reader's
/// workers read in parallel. A gzip-compressed file cannot be read at an offset: it is decompressed once into a cache
/// file (<see cref="DefaultCacheFolder"/>, or the folder given), named by the compressed file's name, size and time, and
/// reused by later runs; the labels file is small and read into memory, compressed or not.
/// </summary>
public sealed class IdxImageSource : IImageSource, IDisposable
{
    private const int HeaderBytes = 16; // magic + three dimensions
    private readonly SafeFileHandle _file;
    private readonly uint[] _labels;
    private readonly int _imageSize;
    private readonly string _identity;

    /// <summary>Folder of decompressed copies of .gz image files: <c>advml-idx-cache</c> under the temporary folder.</summary>
    public static string DefaultCacheFolder => Path.Combine(Path.GetTempPath(), "advml-idx-cache");

    /// <summary>The file the pixels are read from (the decompressed copy of a .gz file).</summary>
    public string ImagesPath { get; }

    /// <inheritdoc/>
    public int RowCount => _labels.Length;

    /// <inheritdoc/>
    public (int Channels, int Height, int Width) ImageShape { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames { get; }

    private IdxImageSource(SafeFileHandle file, string imagesPath, uint[] labels, int height, int width, IReadOnlyList<string> classNames, string identity)
    {
        _file = file;
        ImagesPath = imagesPath;
        _labels = labels;
        _imageSize = height * width;
        ImageShape = (1, height, width);
        ClassNames = classNames;
        _identity = identity;
    }

    /// <summary>
    /// Opens an unsigned-byte image file (3 dimensions) and its labels file (1 dimension), either gzipped. Checks the
    /// headers, that the file is as long as its header says, that the counts agree and that every label names a class.
    /// </summary>
    /// <param name="imagesPath">The images (e.g. train-images-idx3-ubyte[.gz]).</param>
    /// <param name="labelsPath">The labels (e.g. train-labels-idx1-ubyte[.gz]).</param>
    /// <param name="classNames">Class names in index order; null: "0", "1", ... up to the largest label.</param>
    /// <param name="cacheFolder">Where a .gz image file is decompressed; null: <see cref="DefaultCacheFolder"/>.</param>
    public static IdxImageSource Open(string imagesPath, string labelsPath, IReadOnlyList<string>? classNames = null, string? cacheFolder = null)
    {
        ArgumentNullException.ThrowIfNull(imagesPath);
        ArgumentNullException.ThrowIfNull(labelsPath);
        if (!File.Exists(imagesPath)) throw new FileNotFoundException($"IDX file '{imagesPath}' does not exist.", imagesPath);
        var labels = IdxFile.ReadLabels(labelsPath);
        string readable = IsGzip(imagesPath) ? Decompressed(imagesPath, cacheFolder ?? DefaultCacheFolder) : imagesPath;
        var handle = File.OpenHandle(readable, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        try
        {
            Span<byte> header = stackalloc byte[HeaderBytes];
            if (RandomAccess.Read(handle, header, 0) < HeaderBytes)
                throw new InvalidDataException($"IDX file '{imagesPath}' is truncated: it ends inside its 16-byte header. Reinstall or re-download it.");
            int magic = BinaryPrimitives.ReadInt32BigEndian(header);
            if (magic != IdxFile.MagicFor(3))
                throw new InvalidDataException($"IDX file '{imagesPath}' has magic number 0x{magic:X8}; expected 0x{IdxFile.MagicFor(3):X8} (unsigned-byte images, 3 dimensions). " +
                    "Labels and images swapped, or another format: pass the images file first.");
            int n = BinaryPrimitives.ReadInt32BigEndian(header[4..]), h = BinaryPrimitives.ReadInt32BigEndian(header[8..]), w = BinaryPrimitives.ReadInt32BigEndian(header[12..]);
            if (n < 0 || h < 1 || w < 1)
                throw new InvalidDataException($"IDX file '{imagesPath}' declares {n} images of {h}x{w}; the header is corrupt: reinstall or re-download it.");
            long needed = HeaderBytes + (long)n * h * w;
            long length = RandomAccess.GetLength(handle);
            if (length < needed)
                throw new InvalidDataException($"IDX file '{imagesPath}' is truncated: its header declares {n} images of {h}x{w} ({needed} bytes with the header) but it holds {length}. " +
                    "Reinstall the data (Debian: apt-get install --reinstall dataset-fashion-mnist) or re-download the file.");
            if (n != labels.Length)
                throw new InvalidDataException($"'{imagesPath}' holds {n} images but '{labelsPath}' holds {labels.Length} labels; the two files belong to different sets or one is damaged. " +
                    "Use the matching pair from one release.");
            int classes = classNames?.Count ?? (labels.Length == 0 ? 1 : (int)labels.Max() + 1);
            for (int i = 0; i < labels.Length; i++)
                if (labels[i] >= classes)
                    throw new InvalidDataException($"IDX file '{labelsPath}' has label {labels[i]} at row {i}, but there are {classes} classes; the file is corrupt or belongs to another data set.");
            var names = classNames ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
            return new IdxImageSource(handle, readable, labels, h, w, names, Identity(imagesPath, labels));
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <inheritdoc/>
    public uint GetLabel(int row) => _labels[row];

    /// <inheritdoc/>
    public void ReadPixels(ReadOnlySpan<int> rows, Span<float> destination)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(_imageSize);
        try
        {
            for (int i = 0; i < rows.Length; i++)
            {
                int row = rows[i];
                if ((uint)row >= (uint)RowCount) throw new ArgumentOutOfRangeException(nameof(rows), row, $"Row {row} is not in the {RowCount} rows of '{ImagesPath}'.");
                long offset = HeaderBytes + (long)row * _imageSize;
                var bytes = buffer.AsSpan(0, _imageSize);
                int read = 0;
                while (read < bytes.Length)
                {
                    int n = RandomAccess.Read(_file, bytes[read..], offset + read);
                    if (n == 0)
                        throw new InvalidDataException($"IDX file '{ImagesPath}' ends inside row {row} (offset {offset}): it was truncated after it was opened. Copy it again.");
                    read += n;
                }
                var target = destination.Slice(i * _imageSize, _imageSize);
                for (int p = 0; p < bytes.Length; p++) target[p] = bytes[p] / 255f; // as ImageSet.FromBytes reads
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>
    /// The images file's name and size and every label, without reading any pixels: another file or label order changes it;
    /// a damaged file replaced by a good copy does not, so a run stopped by the damage resumes.
    /// </summary>
    public string Fingerprint() => _identity;

    /// <summary>Closes the file.</summary>
    public void Dispose() => _file.Dispose();

    private static string Identity(string imagesPath, uint[] labels)
    {
        var info = new FileInfo(imagesPath);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"idx;{info.Name};{info.Length};"));
        // One byte a label while they fit (the identity checkpoints of byte-labelled sets were written with), four past 255.
        if (labels.All(l => l <= byte.MaxValue)) hash.AppendData(labels.Select(l => (byte)l).ToArray());
        else hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(labels.AsSpan()));
        return Convert.ToHexString(hash.GetHashAndReset())[..32];
    }

    private static bool IsGzip(string path)
    {
        using var file = File.OpenRead(path);
        return file.ReadByte() == 0x1f && file.ReadByte() == 0x8b;
    }

    /// <summary>The decompressed copy of a .gz file in <paramref name="cacheFolder"/>, made (atomically) when missing.</summary>
    private static string Decompressed(string gzPath, string cacheFolder)
    {
        var info = new FileInfo(gzPath);
        string key = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes($"{info.FullName};{info.Length};{info.LastWriteTimeUtc.Ticks}")))[..16];
        string name = Path.GetFileName(gzPath);
        if (name.EndsWith(".gz", StringComparison.OrdinalIgnoreCase)) name = name[..^3];
        string cached = Path.Combine(cacheFolder, $"{name}-{key}");
        if (File.Exists(cached)) return cached;
        try
        {
            Directory.CreateDirectory(cacheFolder);
            // A temporary file, then a rename: a run stopped mid-way leaves no half file under the cache name.
            AtomicFile.Write(cached, target =>
            {
                using var source = new GZipStream(File.OpenRead(gzPath), CompressionMode.Decompress);
                source.CopyTo(target);
            });
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"IDX file '{gzPath}' could not be decompressed ({e.Message}); it is corrupt or truncated: reinstall or re-download it.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Could not decompress '{gzPath}' into the cache folder '{cacheFolder}' ({e.Message}): a gzipped IDX file is read by offset from a " +
                "decompressed copy. Pass a writable cache folder, or decompress the file yourself (gunzip -k) and open that.", e);
        }
        return cached;
    }
}
