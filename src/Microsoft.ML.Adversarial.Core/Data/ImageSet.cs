using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// Labelled images held in memory, the core's data set (no ML.NET): zero-based class indices with their names, and
/// pixels of shape (C, H, W) stored once, contiguously, as bytes (read as value / 255) or as floats (read as they are).
/// The ML.NET adapter shows one as an <c>IDataView</c> (<c>ImageSetDataView</c>) and reads any <c>IDataView</c> into one.
/// </summary>
public sealed class ImageSet : IImageSource
{
    private readonly byte[]? _bytePixels;
    private readonly float[]? _floatPixels;
    private readonly uint[] _labels;
    private readonly int _imageSize;
    [ThreadStatic] private static float[]? _pixelBuffer;
    [ThreadStatic] private static long[]? _labelBuffer;

    /// <summary>Class names, in class-index order.</summary>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>
    /// True when the names are only the indices "0", "1", ... (labels read from numbers, not named classes): such a set
    /// meets a model's classes by index, a named one by name (<see cref="AlignTo"/>).
    /// </summary>
    public bool ClassNamesAreIndices { get; private init; }
    /// <summary>Image shape (channels, height, width).</summary>
    public (int Channels, int Height, int Width) ImageShape { get; }
    /// <summary>Number of images.</summary>
    public int RowCount => _labels.Length;
    /// <summary>Values per image, C * H * W.</summary>
    public int ImageSize => _imageSize;

    private ImageSet(byte[]? bytePixels, float[]? floatPixels, uint[] labels, IReadOnlyList<string> classNames, (int Channels, int Height, int Width) shape)
    {
        if (classNames.Count < 1) throw new ArgumentException("At least one class name is needed.", nameof(classNames));
        if (shape.Channels < 1 || shape.Height < 1 || shape.Width < 1)
            throw new ArgumentOutOfRangeException(nameof(shape), $"Image shape {shape} has a dimension below 1.");
        _imageSize = checked(shape.Channels * shape.Height * shape.Width);
        long stored = bytePixels?.LongLength ?? floatPixels!.LongLength;
        if (stored != (long)_imageSize * labels.Length)
            throw new ArgumentException($"{labels.Length} images of shape {shape} need {(long)_imageSize * labels.Length} values, but {stored} were given.");
        for (int i = 0; i < labels.Length; i++)
            if (labels[i] >= classNames.Count)
                throw new ArgumentOutOfRangeException(nameof(labels), $"Label {labels[i]} of row {i} is not below the class count {classNames.Count}.");
        _bytePixels = bytePixels;
        _floatPixels = floatPixels;
        _labels = labels;
        ClassNames = classNames;
        ImageShape = shape;
    }

    /// <summary>Images stored as bytes in [0, 255]; they read as value / 255.</summary>
    /// <param name="pixels">C * H * W values per image, row after row.</param>
    /// <param name="labels">Zero-based class index of each image.</param>
    /// <param name="classNames">Class names in index order.</param>
    /// <param name="shape">(C, H, W) of each image.</param>
    /// <param name="classNamesAreIndices">The names are only "0", "1", ... (see <see cref="ClassNamesAreIndices"/>).</param>
    public static ImageSet FromBytes(byte[] pixels, uint[] labels, IReadOnlyList<string> classNames, (int Channels, int Height, int Width) shape,
        bool classNamesAreIndices = false)
        => new(pixels, null, labels, classNames, shape) { ClassNamesAreIndices = classNamesAreIndices };

    /// <summary>Images stored as floats, read as they are.</summary>
    /// <param name="pixels">C * H * W values per image, row after row.</param>
    /// <param name="labels">Zero-based class index of each image.</param>
    /// <param name="classNames">Class names in index order.</param>
    /// <param name="shape">(C, H, W) of each image.</param>
    /// <param name="classNamesAreIndices">The names are only "0", "1", ... (see <see cref="ClassNamesAreIndices"/>).</param>
    public static ImageSet FromFloats(float[] pixels, uint[] labels, IReadOnlyList<string> classNames, (int Channels, int Height, int Width) shape,
        bool classNamesAreIndices = false)
        => new(null, pixels, labels, classNames, shape) { ClassNamesAreIndices = classNamesAreIndices };

    /// <summary>The first <paramref name="count"/> rows (all when null or larger).</summary>
    public ImageSet Take(int? count)
    {
        if (count is null || count >= RowCount) return this;
        return Select(Enumerable.Range(0, Math.Max(0, count.Value)).ToArray());
    }

    /// <summary>The given rows, in the given order.</summary>
    public ImageSet Select(IReadOnlyList<int> rows)
    {
        int size = _imageSize;
        var labels = rows.Select(r => _labels[r]).ToArray();
        if (_floatPixels != null)
        {
            var pixels = new float[(long)rows.Count * size];
            for (int i = 0; i < rows.Count; i++) _floatPixels.AsSpan(rows[i] * size, size).CopyTo(pixels.AsSpan(i * size, size));
            return new(null, pixels, labels, ClassNames, ImageShape) { ClassNamesAreIndices = ClassNamesAreIndices };
        }
        var bytes = new byte[(long)rows.Count * size];
        for (int i = 0; i < rows.Count; i++) _bytePixels.AsSpan(rows[i] * size, size).CopyTo(bytes.AsSpan(i * size, size));
        return new(bytes, null, labels, ClassNames, ImageShape) { ClassNamesAreIndices = ClassNamesAreIndices };
    }

    /// <summary>
    /// <paramref name="count"/> rows with the classes as balanced as the data allows (all rows when null or larger): each
    /// class gets count / K rows, the first count % K classes one more, and a class with too few rows gives its share to the
    /// others. Rows keep their order. Every subset the library and the CLI take is this one.
    /// </summary>
    public ImageSet Stratified(int? count)
    {
        if (count is null || count >= RowCount) return this;
        return Select(StratifiedRows(_labels, count.Value, ClassNames.Count));
    }

    /// <summary>The rows a stratified subset of <paramref name="count"/> keeps, in order (see <see cref="Stratified"/>).</summary>
    public static int[] StratifiedRows(IReadOnlyList<uint> labels, int count, int classCount)
    {
        if (count < 0) throw new ArgumentOutOfRangeException(nameof(count), count, "A subset needs a count >= 0.");
        if (count >= labels.Count) return Enumerable.Range(0, labels.Count).ToArray();
        var available = new int[classCount];
        foreach (uint l in labels) available[l]++;
        var quota = new int[classCount];
        int left = count;
        while (left > 0)
        {
            int open = Enumerable.Range(0, classCount).Count(c => quota[c] < available[c]);
            if (open == 0) break;
            int share = Math.Max(1, left / open);
            for (int c = 0; c < classCount && left > 0; c++)
            {
                int add = Math.Min(Math.Min(share, available[c] - quota[c]), left);
                quota[c] += add;
                left -= add;
            }
        }
        var taken = new int[classCount];
        var rows = new List<int>(count);
        for (int i = 0; i < labels.Count && rows.Count < count; i++)
        {
            uint l = labels[i];
            if (taken[l] < quota[l]) { taken[l]++; rows.Add(i); }
        }
        return rows.ToArray();
    }

    /// <summary>
    /// This set with its labels renumbered to <paramref name="classes"/>' order (a model's classes), matched by name
    /// (<see cref="ClassMatch"/>); a set whose names are only indices keeps its indices, which must lie below the count.
    /// Throws, listing both sets, when a class of one is not in the other.
    /// </summary>
    public ImageSet AlignTo(IReadOnlyList<string> classes, string setName = "the data", string classesName = "the model")
    {
        ArgumentNullException.ThrowIfNull(classes);
        if (ClassNamesAreIndices)
        {
            if (ClassNames.Count > classes.Count)
                throw new ArgumentException($"{char.ToUpperInvariant(setName[0])}{setName[1..]} has class indices up to {ClassNames.Count - 1}; {classesName} has {classes.Count} classes ({ClassMatch.Show(classes)}).");
            return new ImageSet(_bytePixels, _floatPixels, _labels, classes, ImageShape);
        }
        var map = ClassMatch.Map(ClassNames, classes, setName, classesName);
        if (ClassNames.SequenceEqual(classes, StringComparer.Ordinal)) return this;
        var labels = _labels.Select(l => (uint)map[l]).ToArray();
        return new ImageSet(_bytePixels, _floatPixels, labels, classes, ImageShape);
    }

    /// <summary>Zero-based class index of a row.</summary>
    public uint GetLabel(int row) => _labels[row];

    /// <summary>Copies the pixels of one row into <paramref name="destination"/> (length C*H*W).</summary>
    public void CopyPixels(int row, Span<float> destination)
    {
        if (_floatPixels != null)
        {
            _floatPixels.AsSpan(row * _imageSize, _imageSize).CopyTo(destination);
            return;
        }
        var src = _bytePixels.AsSpan(row * _imageSize, _imageSize);
        for (int i = 0; i < src.Length; i++) destination[i] = src[i] / 255f;
    }

    /// <inheritdoc/>
    public void ReadPixels(ReadOnlySpan<int> rows, Span<float> destination)
    {
        for (int i = 0; i < rows.Length; i++) CopyPixels(rows[i], destination.Slice(i * _imageSize, _imageSize));
    }

    /// <summary>SHA-256 of every label and pixel, in row order (the row order decides the epoch order too).</summary>
    public string Fingerprint()
    {
        var pixels = new float[_imageSize];
        using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
        Span<byte> label = stackalloc byte[4];
        for (int i = 0; i < RowCount; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(label, _labels[i]);
            hash.AppendData(label);
            CopyPixels(i, pixels);
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(pixels.AsSpan()));
        }
        return Convert.ToHexString(hash.GetHashAndReset())[..32];
    }

    /// <summary>
    /// Why these images cannot be inputs of a model on <paramref name="range"/> (<see cref="InputRange.Problem"/>: NaN,
    /// wrong channel count, values outside the range such as 0..255 for a [0, 1] model), or null. One pass, in chunks.
    /// </summary>
    public string? RangeProblem(InputRange range)
    {
        ArgumentNullException.ThrowIfNull(range);
        const int chunk = 1024;
        for (int start = 0; start < RowCount; start += chunk)
        {
            using var scope = torch.NewDisposeScope();
            var (x, _) = ToTensors(start, chunk);
            if (range.Problem(x) is { } problem) return $"{problem} (rows {start} to {Math.Min(start + chunk, RowCount) - 1})";
        }
        return null;
    }

    /// <summary>The given rows as tensors: images [n, C, H, W] (float32) and zero-based labels [n] (int64).</summary>
    public (Tensor Images, Tensor Labels) ToTensors(ReadOnlySpan<int> rows, Device? device = null)
    {
        // Reused buffers: batches of large images would otherwise land on the large-object heap every step.
        var pixels = _pixelBuffer is { } pb && pb.Length == rows.Length * _imageSize ? pb : _pixelBuffer = new float[rows.Length * _imageSize];
        var labels = _labelBuffer is { } lb && lb.Length == rows.Length ? lb : _labelBuffer = new long[rows.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            CopyPixels(rows[i], pixels.AsSpan(i * _imageSize, _imageSize));
            labels[i] = _labels[rows[i]];
        }
        // clone(): the tensor may share memory with the reused buffer.
        using var shared = torch.tensor(pixels, new long[] { rows.Length, ImageShape.Channels, ImageShape.Height, ImageShape.Width });
        using var sharedLabels = torch.tensor(labels);
        var images = shared.clone();
        var y = sharedLabels.clone();
        if (device is not null && device.type != DeviceType.CPU)
            return (images.to(device), y.to(device));
        return (images, y);
    }

    /// <summary>Rows <paramref name="start"/> to <paramref name="start"/> + <paramref name="count"/> - 1 as tensors.</summary>
    public (Tensor Images, Tensor Labels) ToTensors(int start, int count, Device? device = null)
        => ToTensors(Enumerable.Range(start, Math.Min(count, RowCount - start)).ToArray(), device);
}
