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

    /// <summary>Called when a cursor starts, so every pass over the data maps it the same way.</summary>
    public virtual void Reset() { }

    /// <summary>
    /// Maps <paramref name="count"/> rows. <paramref name="labels"/> holds zero-based classes (-1 for a missing key).
    /// Writes float vectors into <c>vectorOutputs[i]</c> (count * length) and keys (1-based) into <c>keyOutputs[i]</c>.
    /// </summary>
    public abstract void Map(float[] pixels, long[]? labels, float[]? epsilons, int count, float[]?[] vectorOutputs, uint[]?[] keyOutputs);
}

/// <summary>
/// An IDataView that appends a <see cref="BatchMapper"/>'s columns to its input. The cursor reads a batch of input
/// rows, maps them in one call, and serves them one at a time; input columns pass through from a per-batch cache.
/// </summary>
internal sealed class BatchedDataView : IDataView
{
    private readonly IDataView _input;
    private readonly BatchMapper _mapper;
    private readonly int _pixelIndex, _labelIndex = -1, _epsIndex = -1;

    public BatchedDataView(IDataView input, BatchMapper mapper)
    {
        _input = input;
        _mapper = mapper;
        _pixelIndex = input.Schema[mapper.PixelColumnName].Index;
        if (mapper.LabelColumnName is { } l) _labelIndex = input.Schema[l].Index;
        if (mapper.EpsilonColumnName is { } e) _epsIndex = input.Schema[e].Index;
        Schema = BuildSchema(input.Schema, mapper.Outputs);
    }

    public static DataViewSchema BuildSchema(DataViewSchema input, IReadOnlyList<OutputColumn> outputs)
    {
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(input);
        foreach (var o in outputs) builder.AddColumn(o.Name, o.Type, o.Annotations);
        return builder.ToSchema();
    }

    public DataViewSchema Schema { get; }
    public bool CanShuffle => false;
    public long? GetRowCount() => _input.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.Select(c => c.Index).ToHashSet();
        int inputCount = _input.Schema.Count;
        bool mapping = needed.Any(i => i >= inputCount);
        var inputNeeded = needed.Where(i => i < inputCount).ToHashSet();
        if (mapping)
        {
            inputNeeded.Add(_pixelIndex);
            if (_labelIndex >= 0) inputNeeded.Add(_labelIndex);
            if (_epsIndex >= 0) inputNeeded.Add(_epsIndex);
        }
        var cursor = _input.GetRowCursor(inputNeeded.Select(i => _input.Schema[i]));
        if (mapping) _mapper.Reset();
        return new Cursor(this, cursor, needed, inputNeeded, mapping);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null)
        => new[] { GetRowCursor(columnsNeeded, rand) };

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchedDataView _view;
        private readonly DataViewRowCursor _input;
        private readonly HashSet<int> _active;
        private readonly bool _mapping;
        private readonly Dictionary<int, IColumnCache> _caches = new();
        private readonly IColumnCache _ids;
        private readonly ValueGetter<VBuffer<float>>? _pixels;
        private readonly ValueGetter<uint>? _label;
        private readonly ValueGetter<float>? _epsilon;
        private readonly int _pixelLength;
        private readonly float[]?[] _vectorOut;
        private readonly uint[]?[] _keyOut;
        private int _count, _slot = -1;
        private long _position = -1;
        private bool _inputDone;
        private VBuffer<float> _pixelBuffer;
        private readonly float[]? _batchPixels;
        private readonly long[]? _batchLabels;
        private readonly float[]? _batchEps;

        public Cursor(BatchedDataView view, DataViewRowCursor input, HashSet<int> active, HashSet<int> inputActive, bool mapping)
        {
            _view = view;
            _input = input;
            _active = active;
            _mapping = mapping;
            int b = view._mapper.BatchSize;
            foreach (int i in inputActive.Where(active.Contains))
                _caches[i] = ColumnCache.Create(input, input.Schema[i], b);
            _ids = ColumnCache.CreateIds(input, b);
            var outputs = view._mapper.Outputs;
            _vectorOut = new float[]?[outputs.Count];
            _keyOut = new uint[]?[outputs.Count];
            if (mapping)
            {
                var pixelCol = input.Schema[view._pixelIndex];
                _pixels = input.GetGetter<VBuffer<float>>(pixelCol);
                _pixelLength = ((VectorDataViewType)pixelCol.Type).Size;
                if (view._labelIndex >= 0) _label = input.GetGetter<uint>(input.Schema[view._labelIndex]);
                if (view._epsIndex >= 0) _epsilon = input.GetGetter<float>(input.Schema[view._epsIndex]);
                // One set of buffers per cursor: per-batch arrays would churn the large-object heap.
                _batchPixels = new float[b * _pixelLength];
                if (_label != null) _batchLabels = new long[b];
                if (_epsilon != null) _batchEps = new float[b];
                for (int o = 0; o < outputs.Count; o++)
                {
                    if (outputs[o].VectorLength > 0) _vectorOut[o] = new float[b * outputs[o].VectorLength];
                    else _keyOut[o] = new uint[b];
                }
            }
        }

        public override DataViewSchema Schema => _view.Schema;
        public override long Position => _position;
        public override long Batch => 0;
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);

        public override bool MoveNext()
        {
            if (_slot + 1 < _count)
            {
                _slot++;
                _position++;
                return true;
            }
            if (_inputDone || !FillBatch()) return false;
            _slot = 0;
            _position++;
            return true;
        }

        private bool FillBatch()
        {
            int b = _view._mapper.BatchSize;
            var pixels = _batchPixels;
            var labels = _batchLabels;
            var eps = _batchEps;
            _count = 0;
            uint key = 0;
            float e = 0;
            while (_count < b && _input.MoveNext())
            {
                foreach (var c in _caches.Values) c.Capture(_count);
                _ids.Capture(_count);
                if (_mapping)
                {
                    _pixels!(ref _pixelBuffer);
                    if (_pixelBuffer.Length != _pixelLength)
                        throw new InvalidOperationException($"Row {_input.Position}: column '{_view._mapper.PixelColumnName}' has {_pixelBuffer.Length} values; expected {_pixelLength}.");
                    _pixelBuffer.CopyTo(pixels!.AsSpan(_count * _pixelLength, _pixelLength));
                    if (_label != null) { _label(ref key); labels![_count] = (long)key - 1; }
                    if (_epsilon != null) { _epsilon(ref e); eps![_count] = e; }
                }
                _count++;
            }
            if (_count < b) _inputDone = true;
            if (_count == 0) return false;
            if (_mapping) _view._mapper.Map(pixels!, labels, eps, _count, _vectorOut, _keyOut);
            return true;
        }

        public override ValueGetter<DataViewRowId> GetIdGetter() => ((ColumnCache<DataViewRowId>)_ids).Getter(() => _slot);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active.Contains(column.Index))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was created.");
            int inputCount = _view._input.Schema.Count;
            if (column.Index < inputCount)
                return _caches[column.Index] is ColumnCache<TValue> cache
                    ? cache.Getter(() => _slot)
                    : throw new InvalidOperationException($"Column '{column.Name}' has type {column.Type}; requested {typeof(TValue).Name}.");
            int o = column.Index - inputCount;
            var output = _view._mapper.Outputs[o];
            if (output.VectorLength > 0)
            {
                if (typeof(TValue) != typeof(VBuffer<float>)) throw new InvalidOperationException($"Column '{column.Name}' is a Single vector; requested {typeof(TValue).Name}.");
                int len = output.VectorLength;
                ValueGetter<VBuffer<float>> g = (ref VBuffer<float> dst) =>
                {
                    var editor = VBufferEditor.Create(ref dst, len);
                    _vectorOut[o].AsSpan(_slot * len, len).CopyTo(editor.Values);
                    dst = editor.Commit();
                };
                return (ValueGetter<TValue>)(Delegate)g;
            }
            if (typeof(TValue) != typeof(uint)) throw new InvalidOperationException($"Column '{column.Name}' is a key; requested {typeof(TValue).Name}.");
            ValueGetter<uint> k = (ref uint dst) => dst = _keyOut[o]![_slot];
            return (ValueGetter<TValue>)(Delegate)k;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _input.Dispose();
            base.Dispose(disposing);
        }
    }
}

internal interface IColumnCache
{
    void Capture(int slot);
}

/// <summary>Copies of one column's values for the rows of the current batch.</summary>
internal class ColumnCache<T> : IColumnCache
{
    private readonly ValueGetter<T> _source;
    protected readonly T[] Values;

    public ColumnCache(ValueGetter<T> source, int size)
    {
        _source = source;
        Values = new T[size];
    }

    public virtual void Capture(int slot) => _source(ref Values[slot]);

    public virtual ValueGetter<T> Getter(Func<int> slot) => (ref T dst) => dst = Values[slot()];
}

/// <summary>A cache of vectors: each row's buffer is its own, and readers get a copy.</summary>
internal sealed class VectorCache<TItem> : ColumnCache<VBuffer<TItem>>
{
    private VBuffer<TItem> _scratch;

    public VectorCache(ValueGetter<VBuffer<TItem>> source, int size) : base(source, size) => _source = source;

    private readonly ValueGetter<VBuffer<TItem>> _source;

    public override void Capture(int slot)
    {
        _source(ref _scratch);
        _scratch.CopyTo(ref Values[slot]);
    }

    public override ValueGetter<VBuffer<TItem>> Getter(Func<int> slot) => (ref VBuffer<TItem> dst) => Values[slot()].CopyTo(ref dst);
}

internal static class ColumnCache
{
    public static IColumnCache Create(DataViewRow row, DataViewSchema.Column column, int size)
    {
        var raw = column.Type.RawType;
        if (raw.IsGenericType && raw.GetGenericTypeDefinition() == typeof(VBuffer<>))
        {
            var item = raw.GetGenericArguments()[0];
            var method = typeof(ColumnCache).GetMethod(nameof(CreateVector), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(item);
            return (IColumnCache)method.Invoke(null, new object[] { row, column, size })!;
        }
        var plain = typeof(ColumnCache).GetMethod(nameof(CreatePlain), System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static)!.MakeGenericMethod(raw);
        return (IColumnCache)plain.Invoke(null, new object[] { row, column, size })!;
    }

    public static IColumnCache CreateIds(DataViewRow row, int size) => new ColumnCache<DataViewRowId>(row.GetIdGetter(), size);

    private static IColumnCache CreateVector<TItem>(DataViewRow row, DataViewSchema.Column column, int size)
        => new VectorCache<TItem>(row.GetGetter<VBuffer<TItem>>(column), size);

    private static IColumnCache CreatePlain<T>(DataViewRow row, DataViewSchema.Column column, int size)
        => new ColumnCache<T>(row.GetGetter<T>(column), size);
}
