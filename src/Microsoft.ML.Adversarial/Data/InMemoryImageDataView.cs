using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// An <see cref="IDataView"/> over images held in memory: a key-typed label column whose key values
/// are the class names, and a pixel column of type <c>Vector&lt;Single, C, H, W&gt;</c>.
/// Pixels are stored once, contiguously, as bytes (value / 255) or as floats.
/// </summary>
public sealed class InMemoryImageDataView : IDataView
{
    private readonly byte[]? _bytePixels;
    private readonly float[]? _floatPixels;
    private readonly uint[] _labels; // zero-based class indices
    private readonly int _imageSize;
    [ThreadStatic] private static float[]? _pixelBuffer;
    [ThreadStatic] private static long[]? _labelBuffer;

    /// <summary>Class names, in key order.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>Image shape (channels, height, width).</summary>
    public (int Channels, int Height, int Width) ImageShape { get; }
    public string LabelColumnName { get; }
    public string PixelColumnName { get; }

    public DataViewSchema Schema { get; }
    public bool CanShuffle => true;
    public int RowCount => _labels.Length;

    private InMemoryImageDataView(byte[]? bytePixels, float[]? floatPixels, uint[] labels, IReadOnlyList<string> classNames,
        (int Channels, int Height, int Width) shape, string labelColumnName, string pixelColumnName)
    {
        if (classNames.Count < 1) throw new ArgumentException("At least one class name is needed.", nameof(classNames));
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
        LabelColumnName = labelColumnName;
        PixelColumnName = pixelColumnName;
        Schema = BuildSchema(classNames, shape, labelColumnName, pixelColumnName);
    }

    /// <summary>Images stored as bytes in [0, 255]; the pixel column reads them as value / 255.</summary>
    public static InMemoryImageDataView FromBytes(byte[] pixels, uint[] labels, IReadOnlyList<string> classNames,
        (int Channels, int Height, int Width) shape, string labelColumnName = "Label", string pixelColumnName = "Pixels")
        => new(pixels, null, labels, classNames, shape, labelColumnName, pixelColumnName);

    /// <summary>Images stored as floats, read as they are.</summary>
    public static InMemoryImageDataView FromFloats(float[] pixels, uint[] labels, IReadOnlyList<string> classNames,
        (int Channels, int Height, int Width) shape, string labelColumnName = "Label", string pixelColumnName = "Pixels")
        => new(null, pixels, labels, classNames, shape, labelColumnName, pixelColumnName);

    /// <summary>
    /// Reads any IDataView with a pixel vector column (<c>Vector&lt;Single, C, H, W&gt;</c>) and a key or Single label
    /// into memory, e.g. the output of <c>LoadFromImageFolder</c>.
    /// </summary>
    public static InMemoryImageDataView Read(IDataView data, string pixelColumnName = "Pixels", string labelColumnName = "Label")
    {
        ArgumentNullException.ThrowIfNull(data);
        var shape = MLNet.SchemaChecks.PixelShape(data.Schema, pixelColumnName);
        MLNet.SchemaChecks.LabelClasses(data.Schema, labelColumnName);
        return MLNet.AdversarialTrainingEstimator.ReadImages(data, pixelColumnName, labelColumnName, shape);
    }

    /// <summary>The first <paramref name="count"/> rows (all when null or larger).</summary>
    public InMemoryImageDataView Take(int? count)
    {
        if (count is null || count >= RowCount) return this;
        int n = Math.Max(0, count.Value), size = _imageSize;
        return _floatPixels != null
            ? new(null, _floatPixels.AsSpan(0, n * size).ToArray(), _labels[..n], ClassNames, ImageShape, LabelColumnName, PixelColumnName)
            : new(_bytePixels!.AsSpan(0, n * size).ToArray(), null, _labels[..n], ClassNames, ImageShape, LabelColumnName, PixelColumnName);
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

    /// <summary>The given rows as tensors: images [n, C, H, W] (float32) and zero-based labels [n] (int64).</summary>
    public (TorchSharp.torch.Tensor Images, TorchSharp.torch.Tensor Labels) ToTensors(ReadOnlySpan<int> rows, TorchSharp.torch.Device? device = null)
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
        using var shared = TorchSharp.torch.tensor(pixels, new long[] { rows.Length, ImageShape.Channels, ImageShape.Height, ImageShape.Width });
        using var sharedLabels = TorchSharp.torch.tensor(labels);
        var images = shared.clone();
        var y = sharedLabels.clone();
        if (device is not null && device.type != TorchSharp.DeviceType.CPU)
            return (images.to(device), y.to(device));
        return (images, y);
    }

    /// <summary>Rows <paramref name="start"/> to <paramref name="start"/> + <paramref name="count"/> - 1 as tensors.</summary>
    public (TorchSharp.torch.Tensor Images, TorchSharp.torch.Tensor Labels) ToTensors(int start, int count, TorchSharp.torch.Device? device = null)
        => ToTensors(Enumerable.Range(start, Math.Min(count, RowCount - start)).ToArray(), device);

    public long? GetRowCount() => _labels.Length;

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var active = new bool[Schema.Count];
        foreach (var c in columnsNeeded) active[c.Index] = true;
        int[]? order = null;
        if (rand != null)
        {
            order = Enumerable.Range(0, _labels.Length).ToArray();
            rand.Shuffle(order);
        }
        return new Cursor(this, active, order);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    private static DataViewSchema BuildSchema(IReadOnlyList<string> classNames, (int Channels, int Height, int Width) shape,
        string labelColumnName, string pixelColumnName)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumn(labelColumnName, new KeyDataViewType(typeof(uint), classNames.Count), MLNet.SchemaChecks.TextVectorAnnotation("KeyValues", classNames));
        builder.AddColumn(pixelColumnName, new VectorDataViewType(NumberDataViewType.Single, shape.Channels, shape.Height, shape.Width));
        return builder.ToSchema();
    }

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly InMemoryImageDataView _parent;
        private readonly bool[] _active;
        private readonly int[]? _order;
        private long _position = -1;

        public Cursor(InMemoryImageDataView parent, bool[] active, int[]? order)
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
            if (_position + 1 >= _parent._labels.Length)
            {
                _position = _parent._labels.Length;
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
                ValueGetter<uint> label = (ref uint value) => value = _parent._labels[Row] + 1; // key values are 1-based; 0 is missing
                return (ValueGetter<TValue>)(Delegate)label;
            }
            if (typeof(TValue) != typeof(VBuffer<float>))
                throw new InvalidOperationException($"Column '{column.Name}' is a Single vector; requested {typeof(TValue).Name}.");
            ValueGetter<VBuffer<float>> pixels = (ref VBuffer<float> dst) =>
            {
                var editor = VBufferEditor.Create(ref dst, _parent._imageSize);
                _parent.CopyPixels(Row, editor.Values);
                dst = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)pixels;
        }
    }
}
