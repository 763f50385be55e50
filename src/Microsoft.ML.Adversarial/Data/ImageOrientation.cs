using System.Runtime.InteropServices;
using Microsoft.ML.Data;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// EXIF orientation, the one place it is applied: a photo is read as browsers, ImageSharp's <c>AutoOrient</c> and PIL's
/// <c>exif_transpose</c> show it. Cameras and phones store the sensor's pixels and say in the EXIF Orientation tag how
/// to turn them (6 for every phone photo taken upright); ML.NET's <c>LoadImages</c> (SkiaSharp's <c>SKBitmap.Decode</c>)
/// ignores the tag, so such photos reached the network on their side.
/// </summary>
internal static class ImageOrientation
{
    /// <summary>The file's orientation (SkiaSharp reads the tag from the header); TopLeft (as stored) when it has none or cannot be read.</summary>
    public static SKEncodedOrigin Of(string path)
    {
        try
        {
            using var codec = SKCodec.Create(path);
            return codec?.EncodedOrigin ?? SKEncodedOrigin.TopLeft;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return SKEncodedOrigin.TopLeft; // the decoder reports the file itself
        }
    }

    /// <summary>
    /// The image as shown: a new image turned and flipped as <paramref name="origin"/> says (orientations 5 to 8 swap
    /// width and height), or <paramref name="image"/> itself for TopLeft.
    /// </summary>
    public static MLImage Apply(MLImage image, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft or < SKEncodedOrigin.TopLeft or > SKEncodedOrigin.LeftBottom) return image;
        int sw = image.Width, sh = image.Height;
        bool swap = origin >= SKEncodedOrigin.LeftTop;
        int dw = swap ? sh : sw, dh = swap ? sw : sh;
        var source = MemoryMarshal.Cast<byte, uint>(image.Pixels); // 4 bytes a pixel, moved whole
        var shown = new uint[dw * dh];
        for (int y = 0; y < dh; y++)
            for (int x = 0; x < dw; x++)
            {
                // The stored pixel shown at (x, y).
                var (sx, sy) = origin switch
                {
                    SKEncodedOrigin.TopRight => (sw - 1 - x, y),              // 2: mirrored left-right
                    SKEncodedOrigin.BottomRight => (sw - 1 - x, sh - 1 - y),  // 3: turned 180 degrees
                    SKEncodedOrigin.BottomLeft => (x, sh - 1 - y),            // 4: mirrored top-bottom
                    SKEncodedOrigin.LeftTop => (y, x),                        // 5: transposed
                    SKEncodedOrigin.RightTop => (y, sh - 1 - x),              // 6: shown turned 90 degrees clockwise
                    SKEncodedOrigin.RightBottom => (sw - 1 - y, sh - 1 - x),  // 7: transposed across the other diagonal
                    _ => (sw - 1 - y, x),                                     // 8: shown turned 90 degrees anticlockwise
                };
                shown[y * dw + x] = source[sy * sw + sx];
            }
        return MLImage.CreateFromPixels(dw, dh, image.PixelFormat, MemoryMarshal.AsBytes(shown.AsSpan()));
    }
}

/// <summary>
/// The pipeline step after <c>LoadImages</c> that applies <see cref="ImageOrientation"/> to each image, before it is
/// resized (so a portrait photo is cropped and scaled as a portrait). It only wraps the data view; it is never saved
/// (the image-folder pipeline is fitted and applied in memory).
/// </summary>
internal sealed class ExifOrientationStep(string imageColumn, string pathColumn, string folder) : IEstimator<ITransformer>, ITransformer
{
    public ITransformer Fit(IDataView input) => this;

    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => inputSchema;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inputSchema;

    public bool IsRowToRowMapper => false;

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        throw new NotSupportedException("The image-folder reader's orientation step maps whole data views only.");

    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException("The image-folder reader's pipeline is not saved; save the data or the model instead.");

    public IDataView Transform(IDataView input) => new View(input, input.Schema[imageColumn].Index, input.Schema[pathColumn].Index, folder);

    private sealed class View(IDataView inner, int imageIndex, int pathIndex, string folder) : IDataView
    {
        public DataViewSchema Schema => inner.Schema;
        public bool CanShuffle => inner.CanShuffle;
        public long? GetRowCount() => inner.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
            => new Cursor(inner.GetRowCursor(WithPath(columnsNeeded), rand), imageIndex, pathIndex, folder);

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
            => inner.GetRowCursorSet(WithPath(columnsNeeded), n, rand).Select(c => (DataViewRowCursor)new Cursor(c, imageIndex, pathIndex, folder)).ToArray();

        // The image's orientation is read from its file, so the path goes with the image.
        private List<DataViewSchema.Column> WithPath(IEnumerable<DataViewSchema.Column> columns)
        {
            var list = columns.ToList();
            if (list.Any(c => c.Index == imageIndex) && list.All(c => c.Index != pathIndex)) list.Add(inner.Schema[pathIndex]);
            return list;
        }
    }

    private sealed class Cursor(DataViewRowCursor inner, int imageIndex, int pathIndex, string folder) : DataViewRowCursor
    {
        public override long Position => inner.Position;
        public override long Batch => inner.Batch;
        public override DataViewSchema Schema => inner.Schema;
        public override bool MoveNext() => inner.MoveNext();
        public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(column);
        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (column.Index != imageIndex) return inner.GetGetter<TValue>(column);
            var image = inner.GetGetter<MLImage>(column);
            var path = inner.GetGetter<ReadOnlyMemory<char>>(inner.Schema[pathIndex]);
            MLImage? loaded = null; // the loader's image: it disposes it when it loads the next
            ReadOnlyMemory<char> relative = default;
            ValueGetter<MLImage> oriented = (ref MLImage value) =>
            {
                // A turned copy given out before is ours to dispose; the loader's own image is not.
                if (value is not null && !ReferenceEquals(value, loaded)) value.Dispose();
                value = null!;
                image(ref loaded!);
                path(ref relative);
                value = loaded is null ? null! : ImageOrientation.Apply(loaded, ImageOrientation.Of(Path.Combine(folder, relative.ToString())));
            };
            return (ValueGetter<TValue>)(Delegate)oriented;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
