using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// Row-at-a-time access to a <see cref="BatchMapper"/>, for <c>mlContext.Model.CreatePredictionEngine</c>: each output
/// getter maps the current input row (a batch of one) the first time it is read at a position. Bulk scoring should go
/// through <c>Transform</c>, which batches.
/// </summary>
internal sealed class BatchRowMapper : IRowToRowMapper
{
    private readonly BatchMapper _mapper;

    public BatchRowMapper(DataViewSchema inputSchema, BatchMapper mapper)
    {
        InputSchema = inputSchema;
        _mapper = mapper;
        OutputSchema = BatchedDataView.BuildSchema(inputSchema, mapper.Outputs);
    }

    public DataViewSchema InputSchema { get; }
    public DataViewSchema OutputSchema { get; }

    private IEnumerable<DataViewSchema.Column> MapperInputs()
    {
        yield return InputSchema[_mapper.PixelColumnName];
        if (_mapper.LabelColumnName is { } l) yield return InputSchema[l];
        if (_mapper.EpsilonColumnName is { } e) yield return InputSchema[e];
    }

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var list = dependingColumns.ToList();
        var needed = list.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (list.Any(c => c.Index >= InputSchema.Count)) needed.AddRange(MapperInputs());
        return needed.DistinctBy(c => c.Index);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly BatchRowMapper _owner;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private readonly float[]?[] _vectorOut;
        private readonly uint[]?[] _keyOut;
        private long _mappedAt = -1;
        private ValueGetter<VBuffer<float>>? _pixels;
        private ValueGetter<uint>? _label;
        private ValueGetter<float>? _epsilon;
        private VBuffer<float> _pixelBuffer;
        private float[] _pixelArray = Array.Empty<float>();

        public Row(BatchRowMapper owner, DataViewRow input, HashSet<int> active)
        {
            _owner = owner;
            _input = input;
            _active = active;
            var outputs = owner._mapper.Outputs;
            _vectorOut = outputs.Select(o => o.VectorLength > 0 ? new float[o.VectorLength] : null).ToArray();
            _keyOut = outputs.Select(o => o.VectorLength > 0 ? null : new uint[1]).ToArray();
        }

        public override DataViewSchema Schema => _owner.OutputSchema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        private void EnsureMapped()
        {
            if (_mappedAt == _input.Position && _mappedAt >= 0) return;
            var m = _owner._mapper;
            _pixels ??= _input.GetGetter<VBuffer<float>>(_owner.InputSchema[m.PixelColumnName]);
            _pixels(ref _pixelBuffer);
            if (_pixelArray.Length != _pixelBuffer.Length) _pixelArray = new float[_pixelBuffer.Length];
            _pixelBuffer.CopyTo(_pixelArray);
            long[]? labels = null;
            float[]? eps = null;
            if (m.LabelColumnName is { } l)
            {
                _label ??= _input.GetGetter<uint>(_owner.InputSchema[l]);
                uint key = 0;
                _label(ref key);
                labels = new[] { (long)key - 1 };
            }
            if (m.EpsilonColumnName is { } e)
            {
                _epsilon ??= _input.GetGetter<float>(_owner.InputSchema[e]);
                float value = 0;
                _epsilon(ref value);
                eps = new[] { value };
            }
            m.Map(_pixelArray, labels, eps, 1, _vectorOut, _keyOut);
            _mappedAt = _input.Position;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active.Contains(column.Index))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested.");
            int inputCount = _owner.InputSchema.Count;
            if (column.Index < inputCount) return _input.GetGetter<TValue>(_owner.InputSchema[column.Index]);
            int o = column.Index - inputCount;
            var output = _owner._mapper.Outputs[o];
            if (output.VectorLength > 0)
            {
                if (typeof(TValue) != typeof(VBuffer<float>)) throw new InvalidOperationException($"Column '{column.Name}' is a Single vector; requested {typeof(TValue).Name}.");
                int len = output.VectorLength;
                ValueGetter<VBuffer<float>> g = (ref VBuffer<float> dst) =>
                {
                    EnsureMapped();
                    var editor = VBufferEditor.Create(ref dst, len);
                    _vectorOut[o].AsSpan(0, len).CopyTo(editor.Values);
                    dst = editor.Commit();
                };
                return (ValueGetter<TValue>)(Delegate)g;
            }
            if (typeof(TValue) != typeof(uint)) throw new InvalidOperationException($"Column '{column.Name}' is a key; requested {typeof(TValue).Name}.");
            ValueGetter<uint> k = (ref uint dst) =>
            {
                EnsureMapped();
                dst = _keyOut[o]![0];
            };
            return (ValueGetter<TValue>)(Delegate)k;
        }
    }
}
