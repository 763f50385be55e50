using Microsoft.ML.Adversarial;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// An <see cref="ImageSet"/> as an <see cref="IDataView"/>: a key-typed label column whose key values are the class
/// names, and a pixel column of type <c>Vector&lt;Single, C, H, W&gt;</c>. Reading it back with
/// <see cref="ImageSetReader"/> gives the same set without a copy.
/// </summary>
public sealed class ImageSetDataView : IDataView
{
    /// <summary>Shows <paramref name="images"/> as a data view.</summary>
    /// <param name="images">The images and labels.</param>
    /// <param name="labelColumnName">Name of the key-typed label column.</param>
    /// <param name="pixelColumnName">Name of the pixel column.</param>
    public ImageSetDataView(ImageSet images, string labelColumnName = ColumnNames.Label, string pixelColumnName = ColumnNames.Pixels)
    {
        Images = images ?? throw new ArgumentNullException(nameof(images));
        LabelColumnName = labelColumnName;
        PixelColumnName = pixelColumnName;
        var (c, h, w) = images.ImageShape;
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(labelColumnName, new KeyDataViewType(typeof(uint), images.ClassNames.Count), SchemaChecks.TextVectorAnnotation("KeyValues", images.ClassNames));
        builder.AddColumn(pixelColumnName, new VectorDataViewType(NumberDataViewType.Single, c, h, w));
        Schema = builder.ToSchema();
    }

    /// <summary>The images behind the view.</summary>
    public ImageSet Images { get; }
    /// <summary>Name of the key-typed label column.</summary>
    public string LabelColumnName { get; }
    /// <summary>Name of the pixel column.</summary>
    public string PixelColumnName { get; }
    /// <inheritdoc/>
    public DataViewSchema Schema { get; }
    /// <inheritdoc/>
    public bool CanShuffle => true;
    /// <inheritdoc/>
    public long? GetRowCount() => Images.RowCount;

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var active = new bool[Schema.Count];
        foreach (var c in columnsNeeded) active[c.Index] = true;
        int[]? order = null;
        if (rand != null)
        {
            order = Enumerable.Range(0, Images.RowCount).ToArray();
            rand.Shuffle(order);
        }
        return new Cursor(this, active, order);
    }

    /// <inheritdoc/>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly ImageSetDataView _parent;
        private readonly bool[] _active;
        private readonly int[]? _order;
        private long _position = -1;

        public Cursor(ImageSetDataView parent, bool[] active, int[]? order)
        {
            _parent = parent;
            _active = active;
            _order = order;
        }

        public override DataViewSchema Schema => _parent.Schema;
        public override long Position => _position;
        public override long Batch => 0;
        private int Row => _order?[_position] ?? (int)_position;

        public override bool IsColumnActive(DataViewSchema.Column column) => _active[column.Index];

        public override bool MoveNext()
        {
            if (_position + 1 >= _parent.Images.RowCount)
            {
                _position = _parent.Images.RowCount;
                return false;
            }
            _position++;
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter()
            => (ref DataViewRowId id) => id = new DataViewRowId((ulong)Row, 0);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active[column.Index])
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was created.");
            if (column.Index == 0)
            {
                if (typeof(TValue) != typeof(uint))
                    throw new InvalidOperationException($"Column '{column.Name}' is a key of type UInt32; requested {typeof(TValue).Name}.");
                ValueGetter<uint> label = (ref uint value) => value = _parent.Images.GetLabel(Row) + 1; // key values are 1-based; 0 is missing
                return (ValueGetter<TValue>)(Delegate)label;
            }
            if (typeof(TValue) != typeof(VBuffer<float>))
                throw new InvalidOperationException($"Column '{column.Name}' is a Single vector; requested {typeof(TValue).Name}.");
            ValueGetter<VBuffer<float>> pixels = (ref VBuffer<float> dst) =>
            {
                var editor = VBufferEditor.Create(ref dst, _parent.Images.ImageSize);
                _parent.Images.CopyPixels(Row, editor.Values);
                dst = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)pixels;
        }
    }
}
