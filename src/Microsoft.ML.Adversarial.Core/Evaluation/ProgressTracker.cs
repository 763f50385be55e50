namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>
/// Counts an evaluation's work (images, batches, (batch, method) steps) and reports <see cref="EvaluationProgress"/>
/// after each method of each batch and after each batch: the one place both evaluators make their reports.
/// </summary>
internal sealed class ProgressTracker
{
    private readonly IProgress<EvaluationProgress>? _progress;
    private readonly System.Diagnostics.Stopwatch _watch = System.Diagnostics.Stopwatch.StartNew();
    private readonly long _total, _batches, _steps;
    private long _done, _batchesDone, _stepsDone;

    /// <param name="progress">Receiver; null reports nothing.</param>
    /// <param name="rows">Images of one pass.</param>
    /// <param name="batchSize">Images per batch.</param>
    /// <param name="methodsPerBatch">Methods run on each batch.</param>
    /// <param name="passes">Passes over the data (transfer: one per source model).</param>
    public ProgressTracker(IProgress<EvaluationProgress>? progress, int rows, int batchSize, int methodsPerBatch, int passes = 1)
    {
        _progress = progress;
        long batchesPerPass = (rows + batchSize - 1) / batchSize;
        _total = (long)rows * passes;
        _batches = batchesPerPass * passes;
        _steps = _batches * Math.Max(1, methodsPerBatch);
    }

    /// <summary>One method finished on the current batch.</summary>
    public void MethodDone(string stage, string method, IReadOnlyList<double> epsilons)
    {
        _stepsDone++;
        Report(stage, method, epsilons);
    }

    /// <summary>The current batch of <paramref name="count"/> images finished (every method).</summary>
    public void BatchDone(string stage, int count)
    {
        _done += count;
        _batchesDone++;
        // A batch with no methods (none configured) still counts its steps, so the last report ends at the total.
        _stepsDone = Math.Max(_stepsDone, _batchesDone * (_steps / Math.Max(1, _batches)));
        Report(stage, null, null);
    }

    private void Report(string stage, string? method, IReadOnlyList<double>? epsilons)
    {
        if (_progress is null) return;
        _progress.Report(new EvaluationProgress(stage, _done, _total, _done / Math.Max(1e-9, _watch.Elapsed.TotalSeconds))
        {
            Method = method, Epsilons = epsilons, BatchesDone = _batchesDone, Batches = _batches, StepsDone = _stepsDone, Steps = _steps,
        });
    }
}
