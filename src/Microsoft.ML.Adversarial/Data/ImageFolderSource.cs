using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// An image folder (one sub-folder per class, as <see cref="ImageFolder.Load"/> reads) as an <see cref="IImageSource"/>
/// decoded on demand: opening it lists the files (no decoding), and each batch is decoded when it is read, through the
/// same ImageAnalytics pipeline as <see cref="ImageFolder.Load"/> (same pixels, alpha composited on
/// <see cref="ImageFolderOptions.Background"/>). Memory holds the file list, not the images, so the trainer's
/// prefetching reader (<see cref="BatchPrefetcher"/>) streams folders of any size, shuffled by row index; the list is
/// compact (paths as UTF-8 in one buffer, a small class index each: about 25 bytes a file for short names). Each file is
/// checked (header, then a full decode) when its batch is read, and a file that fails is named in the error.
/// </summary>
public sealed class ImageFolderSource : IImageSource
{
    private readonly MLContext _mlContext;
    private readonly ImageFolderOptions _options;
    private readonly ImageFileList _files;
    private readonly ITransformer _decoder;
    private readonly string _fingerprint;

    private ImageFolderSource(MLContext mlContext, ImageFolderOptions options, IReadOnlyList<string> classes, ImageFileList files)
    {
        _mlContext = mlContext;
        _options = options;
        _files = files;
        ClassNames = classes;
        // Fitting reads no image: MapValueToKey takes its keys from the class list, the image transforms need no data.
        _decoder = ImageFolder.Pipeline(mlContext, options, classes).Fit(ImageFolder.Entries(mlContext, new[] { EntryOf(0) }));
        ImageShape = (options.Grayscale ? 1 : 3, options.Height, options.Width);
        _fingerprint = Fingerprint(options, classes, files);
    }

    /// <summary>
    /// Lists the folder's classes and image files (in the order <see cref="ImageFolder.Scan"/> gives) without decoding any.
    /// </summary>
    public static ImageFolderSource Open(ImageFolderOptions options, MLContext? mlContext = null)
    {
        ImageFolder.CheckOptions(options);
        var (classes, files) = ImageFolder.ScanFiles(options.Folder);
        var source = new ImageFolderSource(mlContext ?? new MLContext(), options, classes, files);
        // Listing a folder allocates ~150 bytes of short-lived strings a file (paths, names sorted per class) that live long
        // enough to reach generation 2, and a streamed run allocates too little managed memory to trigger the full
        // collection that would free them: measured, they were 3/4 of the memory a 100,000-file folder added to a
        // training run (docs/performance.md). One collection here, for large folders only, returns them; it costs
        // milliseconds against the seconds the listing takes.
        if (files.Count >= LargeFolder) GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        return source;
    }

    /// <summary>Files from which opening a folder ends with a full garbage collection (see <see cref="Open"/>).</summary>
    private const int LargeFolder = 20_000;

    /// <inheritdoc/>
    public int RowCount => _files.Count;

    /// <inheritdoc/>
    public (int Channels, int Height, int Width) ImageShape { get; }

    /// <inheritdoc/>
    public IReadOnlyList<string> ClassNames { get; }

    /// <summary>The file of a row.</summary>
    public string FileOf(int row) => Path.Combine(_options.Folder, _files.PathOf(row));

    /// <inheritdoc/>
    public uint GetLabel(int row) => (uint)_files.ClassOf(row);

    /// <summary>The (path relative to the folder, class name) row the decoding pipeline reads for a file.</summary>
    private (string RelativePath, string Label) EntryOf(int row) => (_files.PathOf(row), ClassNames[_files.ClassOf(row)]);

    /// <summary>
    /// The file list, classes and the options that decide the pixels (size, grey, resizing, background): another folder
    /// layout changes it; a damaged file replaced by a good copy does not, so a run stopped by the damage resumes.
    /// </summary>
    public string Fingerprint() => _fingerprint;

    /// <inheritdoc/>
    public void ReadPixels(ReadOnlySpan<int> rows, Span<float> destination)
    {
        var entries = new (string RelativePath, string Label)[rows.Length];
        var files = new string[rows.Length];
        // Where each path goes in the batch (a path may be asked for twice): rows are matched by path, not by the
        // order ML.NET's cursor happens to give them.
        var positions = new Dictionary<string, Queue<int>>(StringComparer.Ordinal);
        for (int i = 0; i < rows.Length; i++)
        {
            if ((uint)rows[i] >= (uint)RowCount) throw new ArgumentOutOfRangeException(nameof(rows), rows[i], $"Row {rows[i]} is not in the {RowCount} images of '{_options.Folder}'.");
            entries[i] = EntryOf(rows[i]);
            files[i] = Path.Combine(_options.Folder, entries[i].RelativePath);
            if (!positions.TryGetValue(entries[i].RelativePath, out var queue)) positions[entries[i].RelativePath] = queue = new Queue<int>();
            queue.Enqueue(i);
        }
        // The checks ImageFolder.Load makes on the whole folder, made on this batch's files.
        foreach (string file in files) ImageHeader.Check(file, _options.MaxPixels);
        if (ImageDecodeCheck.FirstUndecodable(files, out string? why) is { } bad)
            throw new InvalidDataException($"Image file '{bad}' is corrupt: its header is fine but its pixel data does not decode ({why}); " +
                "it would be read as blank pixels. Copy the file again, or remove it (then restart: removing a file changes the data set; a good copy resumes).");

        var view = ImageFolder.Decode(_decoder, ImageFolder.Entries(_mlContext, entries), _options, files);
        var pixelColumn = view.Schema[_options.PixelColumnName];
        var pathColumn = view.Schema[_options.ImagePathColumnName];
        int size = ImageShape.Channels * ImageShape.Height * ImageShape.Width;
        using var cursor = view.GetRowCursor(new[] { pixelColumn, pathColumn });
        var pixels = cursor.GetGetter<VBuffer<float>>(pixelColumn);
        var path = cursor.GetGetter<ReadOnlyMemory<char>>(pathColumn);
        var buffer = default(VBuffer<float>);
        var name = default(ReadOnlyMemory<char>);
        int read = 0;
        while (cursor.MoveNext())
        {
            pixels(ref buffer);
            path(ref name);
            int at = positions[name.ToString()].Dequeue();
            var target = destination.Slice(at * size, size);
            buffer.CopyTo(target);
            foreach (float v in target)
                if (!float.IsFinite(v)) throw new InvalidDataException($"Image file '{files[at]}' decoded to a non-finite pixel ({v}); remove or replace it.");
            read++;
        }
        if (read != rows.Length)
            throw new InvalidDataException($"Reading {rows.Length} images of '{_options.Folder}' gave {read} rows; a file may have changed while it was read.");
    }

    private static string Fingerprint(ImageFolderOptions o, IReadOnlyList<string> classes, ImageFileList files)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        hash.AppendData(Encoding.UTF8.GetBytes($"folder;{o.Height}x{o.Width};grey={o.Grayscale};{o.Resizing};bg={o.Background:R};"));
        // "path\nlabel\n" per file, in UTF-8, as when the list was held as strings: checkpoints of earlier runs still match.
        var labels = classes.Select(c => Encoding.UTF8.GetBytes($"\n{c}\n")).ToArray();
        for (int i = 0; i < files.Count; i++)
        {
            hash.AppendData(files.PathBytes(i));
            hash.AppendData(labels[files.ClassOf(i)]);
        }
        return Convert.ToHexString(hash.GetHashAndReset())[..32];
    }
}
