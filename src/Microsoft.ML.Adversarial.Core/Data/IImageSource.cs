using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// Labelled images with random access by row: what the trainer and the evaluators read. Labels are held (one number
/// a row; every check and subset needs them), pixels are read on demand, so a source may be far larger than memory.
/// <see cref="ImageSet"/> (in memory) and <see cref="IdxImageSource"/> (IDX files read by offset) implement it in the
/// core; the ML.NET adapter adds <c>ImageFolderSource</c> (image files decoded per batch). <see cref="BatchPrefetcher"/>
/// reads batches of any source ahead of the model on background workers.
/// </summary>
public interface IImageSource
{
    /// <summary>Number of rows.</summary>
    int RowCount { get; }

    /// <summary>Image shape (channels, height, width).</summary>
    (int Channels, int Height, int Width) ImageShape { get; }

    /// <summary>Class names, in class-index order.</summary>
    IReadOnlyList<string> ClassNames { get; }

    /// <summary>Zero-based class index of a row.</summary>
    uint GetLabel(int row);

    /// <summary>
    /// Writes the pixels of <paramref name="rows"/>, C * H * W values each in the order given, into
    /// <paramref name="destination"/>. Called from several threads at once (the prefetching reader's workers), so it must
    /// be thread-safe. A row that cannot be read throws an exception naming it (its file, or its offset in a file).
    /// </summary>
    void ReadPixels(ReadOnlySpan<int> rows, Span<float> destination);

    /// <summary>
    /// Identity of the rows, their labels and their order, stored in checkpoints: a resume refuses a source whose
    /// fingerprint differs. In-memory sets hash every pixel; file sources hash what identifies their files (names,
    /// sizes, times, labels) so the fingerprint costs no pass over the pixels.
    /// </summary>
    string Fingerprint();
}

/// <summary>Helpers over any <see cref="IImageSource"/>: batches as tensors, subsets.</summary>
public static class ImageSources
{
    /// <summary>The given rows as tensors: images [n, C, H, W] (float32) and zero-based labels [n] (int64).</summary>
    public static (Tensor Images, Tensor Labels) ReadBatch(this IImageSource source, ReadOnlySpan<int> rows, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source is ImageSet set) return set.ToTensors(rows, device);
        var (c, h, w) = source.ImageShape;
        var pixels = new float[(long)rows.Length * c * h * w];
        source.ReadPixels(rows, pixels);
        var labels = new long[rows.Length];
        for (int i = 0; i < rows.Length; i++) labels[i] = source.GetLabel(rows[i]);
        return BatchPrefetcher.ToTensors(pixels, labels, rows.Length, source.ImageShape, device);
    }

    /// <summary>
    /// <paramref name="count"/> rows with the classes balanced as <see cref="ImageSet.Stratified"/> chooses them (the same
    /// rows for the same labels), without reading any pixels; the source itself when <paramref name="count"/> is null or
    /// not below its row count.
    /// </summary>
    public static IImageSource Stratified(this IImageSource source, int? count)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source is ImageSet set) return set.Stratified(count);
        if (count is null || count >= source.RowCount) return source;
        var labels = new uint[source.RowCount];
        for (int i = 0; i < labels.Length; i++) labels[i] = source.GetLabel(i);
        return new RowSubset(source, ImageSet.StratifiedRows(labels, count.Value, source.ClassNames.Count));
    }

    /// <summary>The given rows of <paramref name="source"/>, in the given order, read on demand.</summary>
    public static IImageSource Select(this IImageSource source, IReadOnlyList<int> rows)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(rows);
        foreach (int r in rows)
            if ((uint)r >= (uint)source.RowCount) throw new ArgumentOutOfRangeException(nameof(rows), r, $"Row {r} is not in the source's {source.RowCount} rows.");
        return new RowSubset(source, rows.ToArray());
    }

    /// <summary>
    /// The source with its labels renumbered to <paramref name="classes"/>' order (a model's classes), matched by name
    /// with <see cref="ClassMatch.Map"/>, as <see cref="ImageSet.AlignTo"/> does for a set in memory (which it calls for
    /// one); no pixel is read. Throws, listing both sets, when a class of one is not in the other.
    /// </summary>
    public static IImageSource AlignTo(this IImageSource source, IReadOnlyList<string> classes, string setName = "the data", string classesName = "the model")
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentNullException.ThrowIfNull(classes);
        if (source is ImageSet set) return set.AlignTo(classes, setName, classesName);
        var map = ClassMatch.Map(source.ClassNames, classes, setName, classesName);
        if (source.ClassNames.SequenceEqual(classes, StringComparer.Ordinal)) return source;
        return new Relabelled(source, map.Select(m => (uint)m).ToArray(), classes);
    }

    /// <summary>A source whose labels go through a class map (<see cref="AlignTo"/>); pixels and rows unchanged.</summary>
    private sealed class Relabelled(IImageSource inner, uint[] map, IReadOnlyList<string> classes) : IImageSource
    {
        public int RowCount => inner.RowCount;
        public (int Channels, int Height, int Width) ImageShape => inner.ImageShape;
        public IReadOnlyList<string> ClassNames => classes;
        public uint GetLabel(int row) => map[inner.GetLabel(row)];
        public void ReadPixels(ReadOnlySpan<int> rows, Span<float> destination) => inner.ReadPixels(rows, destination);

        public string Fingerprint()
        {
            using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(inner.Fingerprint() + ";relabelled;"));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(map.AsSpan()));
            return Convert.ToHexString(hash.GetHashAndReset())[..32];
        }
    }

    /// <summary>Rows of a source, mapped through a row list (subsets of file sources).</summary>
    private sealed class RowSubset(IImageSource inner, int[] rows) : IImageSource
    {
        public int RowCount => rows.Length;
        public (int Channels, int Height, int Width) ImageShape => inner.ImageShape;
        public IReadOnlyList<string> ClassNames => inner.ClassNames;
        public uint GetLabel(int row) => inner.GetLabel(rows[row]);

        public void ReadPixels(ReadOnlySpan<int> selected, Span<float> destination)
        {
            var mapped = new int[selected.Length];
            for (int i = 0; i < mapped.Length; i++) mapped[i] = rows[selected[i]];
            inner.ReadPixels(mapped, destination);
        }

        public string Fingerprint()
        {
            using var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(inner.Fingerprint()));
            hash.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(rows.AsSpan()));
            return Convert.ToHexString(hash.GetHashAndReset())[..32];
        }
    }
}
