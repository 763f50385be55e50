using Microsoft.ML.Adversarial.Data;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>The batches both evaluators read: rows in order, <see cref="EvaluationOptions.BatchSize"/> at a time, read ahead when not in memory.</summary>
internal static class EvaluationBatches
{
    public static BatchPrefetcher Reader(IImageSource data, EvaluationOptions o)
    {
        long batches = (data.RowCount + (long)o.BatchSize - 1) / o.BatchSize;
        int[] RowsOf(long i)
        {
            int start = (int)(i * o.BatchSize);
            return Enumerable.Range(start, Math.Min(o.BatchSize, data.RowCount - start)).ToArray();
        }
        return new BatchPrefetcher(data, 0, batches, RowsOf, data is ImageSet ? PrefetchOptions.Synchronous : o.Prefetch);
    }
}
