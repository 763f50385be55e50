using Microsoft.ML.Data;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// The view <see cref="ImageFolder.Load"/> returns: ML.NET's image pipeline output with two corrections.
/// <list type="bullet">
/// <item>Alpha: ML.NET decodes through SkiaSharp, which premultiplies alpha, and <c>ExtractPixels</c> drops the alpha
/// plane, so a semi-transparent pixel read as if composited on black (alpha 128 halved every value; transparent white
/// read as black). The pipeline extracts alpha as an extra first plane; this view composites each pixel on
/// <see cref="ImageFolderOptions.Background"/> (premultiplied value + (1 - alpha) * background) and drops that plane.</item>
/// <item>Errors: ML.NET reads rows on worker threads and reports a failure as "Splitter/consolidator worker encountered
/// exception while consuming source data", without the file. This view finds the file by decoding each one again
/// (only on that error path) and names it.</item>
/// </list>
/// </summary>
internal sealed class ImageFolderDataView : IDataView
{
    private readonly IDataView _inner;
    private readonly int _pixelIndex;
    private readonly int _channels;
    private readonly int _plane;
    private readonly float _background;
    private readonly string _folder;
    private readonly IReadOnlyList<string> _files;

    public ImageFolderDataView(IDataView inner, string pixelColumnName, float background, string folder, IReadOnlyList<string> files)
    {
        _inner = inner;
        _background = background;
        _folder = folder;
        _files = files;
        var pixels = inner.Schema[pixelColumnName];
        var type = (VectorDataViewType)pixels.Type;
        _pixelIndex = pixels.Index;
        _channels = type.Dimensions[0] - 1;
        _plane = type.Dimensions[1] * type.Dimensions[2];
        var builder = new DataViewSchema.Builder();
        foreach (var c in inner.Schema)
        {
            var columnType = c.Index == _pixelIndex ? new VectorDataViewType(NumberDataViewType.Single, _channels, type.Dimensions[1], type.Dimensions[2]) : c.Type;
            builder.AddColumn(c.Name, columnType, c.Annotations);
        }
        Schema = builder.ToSchema();
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => _inner.CanShuffle;

    public long? GetRowCount() => _inner.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        => new Cursor(this, Guard(() => _inner.GetRowCursor(Inner(columnsNeeded), rand)));

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => Guard(() => _inner.GetRowCursorSet(Inner(columnsNeeded), n, rand)).Select(c => (DataViewRowCursor)new Cursor(this, c)).ToArray();

    private IEnumerable<DataViewSchema.Column> Inner(IEnumerable<DataViewSchema.Column> columns) => columns.Select(c => _inner.Schema[c.Index]).ToList();

    private T Guard<T>(Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            throw Explain(e);
        }
    }

    /// <summary>The error to show for a failure while reading rows: naming the file that does not decode, else unwrapped.</summary>
    private Exception Explain(Exception e)
    {
        if (e is InvalidDataException ide && _files.Any(f => ide.Message.Contains(f, StringComparison.Ordinal))) return e; // already names its file
        string? bad = ImageDecodeCheck.FirstUndecodable(_files, out string? why);
        if (bad is not null)
            return new InvalidDataException($"Image file '{bad}' could not be read ({why}); it may be corrupt or have changed after the folder was loaded. Remove or replace it.", e);
        var root = e;
        // ML.NET's parallel reader wraps the real error in "Splitter/consolidator worker encountered exception ...".
        while (root.InnerException is not null && (root is InvalidOperationException or AggregateException or System.Reflection.TargetInvocationException))
            root = root.InnerException;
        return new InvalidOperationException($"Reading the image folder '{_folder}' failed: {root.GetType().Name}: {root.Message}", e);
    }

    private sealed class Cursor(ImageFolderDataView parent, DataViewRowCursor inner) : DataViewRowCursor
    {
        public override long Position => inner.Position;
        public override long Batch => inner.Batch;
        public override DataViewSchema Schema => parent.Schema;

        public override bool MoveNext() => parent.Guard(inner.MoveNext);

        public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(parent._inner.Schema[column.Index]);

        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index != parent._pixelIndex)
            {
                var getter = inner.GetGetter<TValue>(parent._inner.Schema[column.Index]);
                return (ref TValue value) =>
                {
                    try { getter(ref value); }
                    catch (Exception e) when (e is not OperationCanceledException) { throw parent.Explain(e); }
                };
            }
            if (typeof(TValue) != typeof(VBuffer<float>))
                throw new InvalidOperationException($"Column '{column.Name}' is {column.Type}; ask for VBuffer<float>, not {typeof(TValue).Name}.");
            var withAlpha = inner.GetGetter<VBuffer<float>>(parent._inner.Schema[column.Index]);
            var source = default(VBuffer<float>);
            ValueGetter<VBuffer<float>> composite = (ref VBuffer<float> value) =>
            {
                try { withAlpha(ref source); }
                catch (Exception e) when (e is not OperationCanceledException) { throw parent.Explain(e); }
                int plane = parent._plane, channels = parent._channels;
                var editor = VBufferEditor.Create(ref value, channels * plane);
                var src = source.GetValues();
                float background = parent._background;
                if (source.IsDense)
                {
                    // Plane 0 is alpha; the others hold premultiplied colour, so "over" is colour + (1 - alpha) * background.
                    for (int c = 0; c < channels; c++)
                        for (int p = 0; p < plane; p++)
                            editor.Values[c * plane + p] = Math.Clamp(src[(c + 1) * plane + p] + (1f - src[p]) * background, 0f, 1f);
                }
                else
                {
                    var dense = new float[(channels + 1) * plane];
                    source.CopyTo(dense);
                    for (int c = 0; c < channels; c++)
                        for (int p = 0; p < plane; p++)
                            editor.Values[c * plane + p] = Math.Clamp(dense[(c + 1) * plane + p] + (1f - dense[p]) * background, 0f, 1f);
                }
                value = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)composite;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}

/// <summary>
/// Decodes image files completely, as the loader will, and reports the first that does not decode cleanly. SkiaSharp's
/// <c>SKBitmap.Decode</c>, which ML.NET uses, accepts a file whose pixel data is corrupt ("incomplete input") and
/// returns blank pixels for the rest; here anything short of success is an error.
/// </summary>
internal static class ImageDecodeCheck
{
    /// <summary>Null when every file decodes; else the first bad file (in list order) and why.</summary>
    public static string? FirstUndecodable(IReadOnlyList<string> files, out string? why)
    {
        var reasons = new string?[files.Count];
        Parallel.For(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, i => reasons[i] = Problem(files[i]));
        for (int i = 0; i < files.Count; i++)
            if (reasons[i] is { } r)
            {
                why = r;
                return files[i];
            }
        why = null;
        return null;
    }

    /// <summary>Null when the file decodes cleanly; else what went wrong.</summary>
    public static string? Problem(string path)
    {
        try
        {
            using var codec = SKCodec.Create(path, out var created);
            if (codec is null) return $"the decoder does not accept it: {created}";
            // JPEG decodes at 1/8 scale here: the entropy-coded data is still read in full, at a fraction of the work.
            var size = codec.GetScaledDimensions(0.125f);
            var info = new SKImageInfo(size.Width, size.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
            using var bitmap = new SKBitmap(info);
            var result = codec.GetPixels(info, bitmap.GetPixels());
            return result == SKCodecResult.Success ? null : $"decoding stopped: {result}";
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return e.Message;
        }
    }
}
