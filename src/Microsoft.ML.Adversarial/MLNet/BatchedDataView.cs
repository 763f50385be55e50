using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// An IDataView that appends a <see cref="BatchMapper"/>'s columns to its input. The cursor reads a batch of input
/// rows, maps them in one call, and serves them one at a time; input columns pass through from a per-batch cache.
/// </summary>
internal sealed class BatchedDataView : IDataView
{
    private readonly IDataView _input;
    private readonly BatchMapper _mapper;
    private readonly int[] _mapperInputs;

    public BatchedDataView(IDataView input, BatchMapper mapper)
    {
        _input = input;
        _mapper = mapper;
        _mapperInputs = mapper.InputColumnNames().Select(n => input.Schema[n].Index).ToArray();
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
        if (mapping) inputNeeded.UnionWith(_mapperInputs);
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
        private readonly Dictionary<int, IColumnCache> _caches = new();
        private readonly IColumnCache _ids;
        private readonly MapperInputReader? _reader;
        private readonly MapperOutputs _outputs;
        // One set of buffers per cursor: per-batch arrays would churn the large-object heap.
        private readonly float[] _batchPixels = Array.Empty<float>();
        private readonly long[]? _batchLabels;
        private readonly float[]? _batchEps;
        private int _count, _slot = -1;
        private long _position = -1;
        private bool _inputDone;

        public Cursor(BatchedDataView view, DataViewRowCursor input, HashSet<int> active, HashSet<int> inputActive, bool mapping)
        {
            _view = view;
            _input = input;
            _active = active;
            int b = view._mapper.BatchSize;
            foreach (int i in inputActive.Where(active.Contains))
                _caches[i] = ColumnCache.Create(input, input.Schema[i], b);
            _ids = ColumnCache.CreateIds(input, b);
            _outputs = new MapperOutputs(view._mapper.Outputs, mapping ? b : 0);
            if (mapping)
            {
                _reader = new MapperInputReader(view._mapper, input);
                (_batchPixels, _batchLabels, _batchEps) = _reader.NewBatch(b);
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
            _count = 0;
            while (_count < b && _input.MoveNext())
            {
                foreach (var c in _caches.Values) c.Capture(_count);
                _ids.Capture(_count);
                _reader?.Read(_count, _batchPixels, _batchLabels, _batchEps);
                _count++;
            }
            if (_count < b) _inputDone = true;
            if (_count == 0) return false;
            if (_reader != null) _view._mapper.Map(_batchPixels, _batchLabels, _batchEps, _count, _outputs.Vectors, _outputs.Keys);
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
            return _outputs.Getter<TValue>(column, column.Index - inputCount, () => _slot, static () => { });
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
