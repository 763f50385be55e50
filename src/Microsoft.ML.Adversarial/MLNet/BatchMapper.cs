using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>One output column of a <see cref="BatchMapper"/>: a float vector or a key.</summary>
internal sealed record OutputColumn(string Name, DataViewType Type, DataViewSchema.Annotations? Annotations = null)
{
    public int VectorLength => Type is VectorDataViewType v ? v.Size : 0;
}

/// <summary>
/// Maps batches of rows with TorchSharp: reads a pixel vector column (and optionally a key label and a float epsilon
/// column) for up to <see cref="BatchSize"/> rows at once and writes float-vector or key outputs.
/// </summary>
internal abstract class BatchMapper
{
    public abstract string PixelColumnName { get; }
    public virtual string? LabelColumnName => null;
    public virtual string? EpsilonColumnName => null;
    public abstract IReadOnlyList<OutputColumn> Outputs { get; }
    public int BatchSize { get; init; } = 256;

    /// <summary>The input columns <see cref="Map"/> reads: the pixels, and the label and epsilon when used.</summary>
    public IEnumerable<string> InputColumnNames()
    {
        yield return PixelColumnName;
        if (LabelColumnName is { } l) yield return l;
        if (EpsilonColumnName is { } e) yield return e;
    }

    /// <summary>Called when a cursor starts, so every pass over the data maps it the same way.</summary>
    public virtual void Reset() { }

    /// <summary>
    /// Maps <paramref name="count"/> rows. <paramref name="labels"/> holds zero-based classes (-1 for a missing key).
    /// Writes float vectors into <c>vectorOutputs[i]</c> (count * length) and keys (1-based) into <c>keyOutputs[i]</c>.
    /// </summary>
    public abstract void Map(float[] pixels, long[]? labels, float[]? epsilons, int count, float[]?[] vectorOutputs, uint[]?[] keyOutputs);
}

/// <summary>
/// Reads a mapper's inputs (pixels, and the label and epsilon when it has them) from the current row of a cursor or
/// row into slot <c>i</c> of batch arrays: the one row-reading routine of <see cref="BatchedDataView"/> and
/// <see cref="BatchRowMapper"/>.
/// </summary>
internal sealed class MapperInputReader
{
    private readonly BatchMapper _mapper;
    private readonly DataViewRow _row;
    private readonly ValueGetter<VBuffer<float>> _pixels;
    private readonly ValueGetter<uint>? _label;
    private readonly ValueGetter<float>? _epsilon;
    private VBuffer<float> _pixelBuffer;

    public MapperInputReader(BatchMapper mapper, DataViewRow row)
    {
        _mapper = mapper;
        _row = row;
        var pixelColumn = row.Schema[mapper.PixelColumnName];
        _pixels = row.GetGetter<VBuffer<float>>(pixelColumn);
        PixelLength = ((VectorDataViewType)pixelColumn.Type).Size;
        if (mapper.LabelColumnName is { } l) _label = row.GetGetter<uint>(row.Schema[l]);
        if (mapper.EpsilonColumnName is { } e) _epsilon = row.GetGetter<float>(row.Schema[e]);
    }

    /// <summary>Values per image.</summary>
    public int PixelLength { get; }

    /// <summary>Batch arrays for <paramref name="size"/> rows: pixels, and labels/epsilons only when the mapper reads them.</summary>
    public (float[] Pixels, long[]? Labels, float[]? Epsilons) NewBatch(int size)
        => (new float[size * PixelLength], _label is null ? null : new long[size], _epsilon is null ? null : new float[size]);

    /// <summary>Copies the current row into slot <paramref name="slot"/>; a missing key label becomes -1.</summary>
    public void Read(int slot, float[] pixels, long[]? labels, float[]? epsilons)
    {
        _pixels(ref _pixelBuffer);
        if (_pixelBuffer.Length != PixelLength)
            throw new InvalidOperationException($"Row {_row.Position}: column '{_mapper.PixelColumnName}' has {_pixelBuffer.Length} values; expected {PixelLength}.");
        _pixelBuffer.CopyTo(pixels.AsSpan(slot * PixelLength, PixelLength));
        if (_label != null)
        {
            uint key = 0;
            _label(ref key);
            labels![slot] = (long)key - 1;
        }
        if (_epsilon != null)
        {
            float e = 0;
            _epsilon(ref e);
            epsilons![slot] = e;
        }
    }
}

/// <summary>Output buffers of a mapper for a batch of rows, and the getters that serve one slot of them.</summary>
internal sealed class MapperOutputs
{
    private readonly IReadOnlyList<OutputColumn> _columns;

    public MapperOutputs(IReadOnlyList<OutputColumn> columns, int size)
    {
        _columns = columns;
        Vectors = columns.Select(o => o.VectorLength > 0 ? new float[size * o.VectorLength] : null).ToArray();
        Keys = columns.Select(o => o.VectorLength > 0 ? null : new uint[size]).ToArray();
    }

    /// <summary>Float-vector outputs (null for key columns), each size * length.</summary>
    public float[]?[] Vectors { get; }
    /// <summary>Key outputs (null for vector columns), one per row.</summary>
    public uint[]?[] Keys { get; }

    /// <summary>
    /// A getter for output <paramref name="index"/> that serves slot <paramref name="slot"/>() after
    /// <paramref name="ensureMapped"/> has run (batch views map ahead and pass a no-op).
    /// </summary>
    public ValueGetter<TValue> Getter<TValue>(DataViewSchema.Column column, int index, Func<int> slot, Action ensureMapped)
    {
        var output = _columns[index];
        if (output.VectorLength > 0)
        {
            if (typeof(TValue) != typeof(VBuffer<float>)) throw new InvalidOperationException($"Column '{column.Name}' is a Single vector; requested {typeof(TValue).Name}.");
            int len = output.VectorLength;
            var values = Vectors[index]!;
            ValueGetter<VBuffer<float>> vector = (ref VBuffer<float> dst) =>
            {
                ensureMapped();
                var editor = VBufferEditor.Create(ref dst, len);
                values.AsSpan(slot() * len, len).CopyTo(editor.Values);
                dst = editor.Commit();
            };
            return (ValueGetter<TValue>)(Delegate)vector;
        }
        if (typeof(TValue) != typeof(uint)) throw new InvalidOperationException($"Column '{column.Name}' is a key; requested {typeof(TValue).Name}.");
        var keys = Keys[index]!;
        ValueGetter<uint> key = (ref uint dst) =>
        {
            ensureMapped();
            dst = keys[slot()];
        };
        return (ValueGetter<TValue>)(Delegate)key;
    }
}
