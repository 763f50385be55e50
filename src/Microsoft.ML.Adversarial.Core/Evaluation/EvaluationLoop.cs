using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>
/// What both evaluators share: the default device, the attacks made for a model (white box or black box), and the
/// batch loop (rows in order, read ahead when not in memory, a dispose scope per batch, cancellation between batches,
/// progress after each batch).
/// </summary>
internal static class EvaluationLoop
{
    /// <summary>The device to run on: the one given, else that of the model's parameters (the CPU when it has none).</summary>
    public static Device DeviceFor(Module<Tensor, Tensor> model, Device? device) => device ?? model.parameters().FirstOrDefault()?.device ?? CPU;

    /// <summary>
    /// Each method of <paramref name="o"/> as an attack on <paramref name="model"/>, with the evaluation's settings; a
    /// black box (scores only) gets the score-based forms, and a method that needs gradients is refused here, before any work.
    /// </summary>
    public static Dictionary<string, Attack> AttacksFor(EvaluationOptions o, Module<Tensor, Tensor> model, string modelName)
    {
        bool blackBox = ScoreFunctionModel.Inside(model) is not null;
        return o.Methods.ToDictionary(m => m,
            m => blackBox ? AttackRegistry.CreateForBlackBox(m, o.OptionsFor(m), modelName) : AttackRegistry.Create(m, o.OptionsFor(m)), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Runs <paramref name="body"/> on each batch of <paramref name="data"/> (images and labels on <paramref name="device"/>,
    /// the first row's index, the row count) inside a dispose scope, then reports the batch to <paramref name="tracker"/>.
    /// </summary>
    public static void ForEachBatch(IImageSource data, EvaluationOptions o, Device device, ProgressTracker tracker, string stage, Action<Tensor, Tensor, int, int> body)
    {
        long batches = (data.RowCount + (long)o.BatchSize - 1) / o.BatchSize;
        int[] RowsOf(long i)
        {
            int start = (int)(i * o.BatchSize);
            return Enumerable.Range(start, Math.Min(o.BatchSize, data.RowCount - start)).ToArray();
        }
        using var reader = new BatchPrefetcher(data, 0, batches, RowsOf, data is ImageSet ? PrefetchOptions.Synchronous : o.Prefetch);
        for (int start = 0; start < data.RowCount; start += o.BatchSize)
        {
            o.CancellationToken.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            int count = Math.Min(o.BatchSize, data.RowCount - start);
            var (x, y) = reader.Take(start / o.BatchSize, device);
            body(x, y, start, count);
            tracker.BatchDone(stage, count);
        }
    }
}
