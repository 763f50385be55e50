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

    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        var list = dependingColumns.ToList();
        var needed = list.Where(c => c.Index < InputSchema.Count).Select(c => InputSchema[c.Index]).ToList();
        if (list.Any(c => c.Index >= InputSchema.Count)) needed.AddRange(_mapper.InputColumnNames().Select(n => InputSchema[n]));
        return needed.DistinctBy(c => c.Index);
    }

    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns) =>
        new Row(this, input, activeColumns.Select(c => c.Index).ToHashSet());

    private sealed class Row : DataViewRow
    {
        private readonly BatchRowMapper _owner;
        private readonly DataViewRow _input;
        private readonly HashSet<int> _active;
        private readonly MapperOutputs _outputs;
        private MapperInputReader? _reader;
        private float[] _pixels = Array.Empty<float>();
        private long[]? _labels;
        private float[]? _epsilons;
        private long _mappedAt = -1;

        public Row(BatchRowMapper owner, DataViewRow input, HashSet<int> active)
        {
            _owner = owner;
            _input = input;
            _active = active;
            _outputs = new MapperOutputs(owner._mapper.Outputs, 1);
        }

        public override DataViewSchema Schema => _owner.OutputSchema;
        public override long Position => _input.Position;
        public override long Batch => _input.Batch;
        public override bool IsColumnActive(DataViewSchema.Column column) => _active.Contains(column.Index);
        public override ValueGetter<DataViewRowId> GetIdGetter() => _input.GetIdGetter();

        /// <summary>Maps the current input row (a batch of one) the first time an output is read at this position.</summary>
        private void EnsureMapped()
        {
            if (_mappedAt == _input.Position && _mappedAt >= 0) return;
            if (_reader is null)
            {
                _reader = new MapperInputReader(_owner._mapper, _input);
                (_pixels, _labels, _epsilons) = _reader.NewBatch(1);
            }
            _reader.Read(0, _pixels, _labels, _epsilons);
            _owner._mapper.Map(_pixels, _labels, _epsilons, 1, _outputs.Vectors, _outputs.Keys);
            _mappedAt = _input.Position;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            if (!_active.Contains(column.Index))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested.");
            int inputCount = _owner.InputSchema.Count;
            if (column.Index < inputCount) return _input.GetGetter<TValue>(_owner.InputSchema[column.Index]);
            return _outputs.Getter<TValue>(column, column.Index - inputCount, static () => 0, EnsureMapped);
        }
    }
}
