using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML;

/// <summary>Entry point for robustness evaluation: <c>mlContext.Adversarial()</c>.</summary>
public static class AdversarialMLContextExtensions
{
    /// <summary>Robustness evaluation helpers (accuracy under attack, label leaking, transfer matrices).</summary>
    public static AdversarialCatalog Adversarial(this MLContext mlContext)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        return new AdversarialCatalog(mlContext);
    }
}

/// <summary>Robustness evaluation of classifiers trained with this library, with ML.NET data and metrics.</summary>
public sealed class AdversarialCatalog
{
    private readonly MLContext _ml;

    internal AdversarialCatalog(MLContext ml) => _ml = ml;

    /// <summary>
    /// Standard ML.NET metrics (top-1 as <c>MicroAccuracy</c>, top-k) of <paramref name="model"/> on <paramref name="data"/>
    /// attacked by <paramref name="method"/> at <paramref name="epsilon"/> (pixel units); method "clean" scores the data as it is.
    /// </summary>
    /// <remarks>
    /// Progress (batches attacked, rows done of the total) goes to <c>mlContext.Log</c> and to <paramref name="progress"/>,
    /// one report per attacked batch.
    /// </remarks>
    public MulticlassClassificationMetrics Evaluate(ImageClassifierTransformer model, IDataView data, string method = "fgsm", double epsilon = 16,
        string labelColumnName = "Label", int topKPredictionCount = 5, IProgress<EvaluationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        using var log = new EvaluationLog(_ml, "Evaluate", progress);
        long? rows = data.GetRowCount();
        string stage = $"evaluating {model.Spec} under {method} at eps {epsilon}";
        log.Info($"{stage} on {(rows is { } n ? $"{n} rows" : "the data")}.");
        var input = data;
        if (!string.Equals(method, "clean", StringComparison.OrdinalIgnoreCase))
        {
            var attack = _ml.Transforms.AdversarialAttack(model, new AdversarialAttackEstimator.Options
            {
                Method = method, Epsilon = epsilon, OutputColumnName = model.PixelColumnName, LabelColumnName = labelColumnName, Seed = 1,
            }).Fit(data);
            attack.BatchAttacked = AttackProgress(log, stage, rows, attack.BatchSize);
            input = attack.Transform(data);
        }
        var metrics = _ml.MulticlassClassification.Evaluate(model.Transform(input), labelColumnName, model.ScoreColumnName, model.PredictedLabelColumnName,
            topKPredictionCount: topKPredictionCount);
        log.Info($"{stage}: top-1 accuracy {metrics.MicroAccuracy:P2}.");
        return metrics;
    }

    /// <summary>Counts attacked rows (thread-safe: ML.NET may read a view with several cursors) and reports each batch.</summary>
    private static Action<int> AttackProgress(EvaluationLog log, string stage, long? rows, int batchSize)
    {
        long done = 0, batches = 0;
        long total = rows ?? 0, totalBatches = rows is { } n ? (n + batchSize - 1) / batchSize : 0;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        object gate = new();
        return count =>
        {
            lock (gate)
            {
                done += count;
                batches++;
                log.Report(new EvaluationProgress(stage, done, Math.Max(total, done), done / Math.Max(1e-9, watch.Elapsed.TotalSeconds))
                {
                    BatchesDone = batches, Batches = Math.Max(totalBatches, batches),
                });
            }
        };
    }

    /// <summary>
    /// Accuracy of <paramref name="model"/> on clean data and under every method and epsilon of <paramref name="options"/>
    /// (default: step l.l., FGSM, iter. basic, iter. l.l. at eps 2, 4, 8, 16), with 95% intervals, the adversarial/clean
    /// ratio, label-leak checks and gradient-masking warnings.
    /// </summary>
    public RobustnessReport EvaluateRobustness(ImageClassifierTransformer model, IDataView data, RobustnessOptions? options = null,
        string labelColumnName = "Label", string? modelName = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new RobustnessOptions();
        options.InputRange = model.InputRange;
        var images = Read(model, data, labelColumnName);
        // Progress goes to mlContext.Log as well as to options.Progress (restored afterwards: the options are the caller's).
        var callerProgress = options.Progress;
        using var log = new EvaluationLog(_ml, "EvaluateRobustness", callerProgress);
        log.Info($"Evaluating {modelName ?? model.Spec.ToString()} on {images.RowCount} images: {string.Join(", ", options.Methods)} at eps {string.Join(", ", options.Epsilons)}.");
        options.Progress = log;
        try
        {
            return new RobustnessEvaluator(options).Evaluate(model.Model, images, modelName ?? model.Spec.ToString(), model.Device);
        }
        finally
        {
            options.Progress = callerProgress;
        }
    }

    /// <summary>
    /// Transfer matrices between <paramref name="models"/> (each one is a source and a target): transfer rate (Table 4),
    /// error rate (Table 6), top-1 and top-5, for each method and epsilon of <paramref name="options"/>.
    /// </summary>
    public TransferReport EvaluateTransfer(IReadOnlyDictionary<string, ImageClassifierTransformer> models, IDataView data, TransferOptions? options = null,
        string labelColumnName = "Label")
    {
        ArgumentNullException.ThrowIfNull(models);
        if (models.Count == 0) throw new ArgumentException("Give at least one model.", nameof(models));
        var first = models.Values.First();
        foreach (var (name, m) in models)
            if (m.ImageShape != first.ImageShape || !m.ClassNames.SequenceEqual(first.ClassNames))
                throw new ArgumentException($"Model '{name}' takes {m.ImageShape} images with classes {ClassMatch.Show(m.ClassNames.ToList())}; '{models.Keys.First()}' takes " +
                    $"{first.ImageShape} with {ClassMatch.Show(first.ClassNames.ToList())}. Transfer needs models of the same input and classes, in the same order.", nameof(models));
        options ??= new TransferOptions();
        options.InputRange = first.InputRange;
        var images = Read(first, data, labelColumnName);
        var nets = models.ToDictionary(kv => kv.Key, kv => kv.Value.Model);
        var callerProgress = options.Progress;
        using var log = new EvaluationLog(_ml, "EvaluateTransfer", callerProgress);
        log.Info($"Transfer between {string.Join(", ", models.Keys)} on {images.RowCount} images: {string.Join(", ", options.Methods)} at eps {string.Join(", ", options.Epsilons)}.");
        options.Progress = log;
        try
        {
            return new TransferEvaluator(options).Evaluate(nets, nets, images, first.Device);
        }
        finally
        {
            options.Progress = callerProgress;
        }
    }

    private static ImageSet Read(ImageClassifierTransformer model, IDataView data, string labelColumnName)
    {
        ArgumentNullException.ThrowIfNull(data);
        // Labels meet the model's classes by name, whatever order the label column's keys have.
        return ImageSetReader.Read(data, model.PixelColumnName, labelColumnName, model.ImageShape).AlignTo(model.ClassNames, $"label column '{labelColumnName}'");
    }
}
