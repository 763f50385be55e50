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
        TorchBackend.EnsureLoaded();
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
    /// <param name="model">The classifier, or a fitted chain holding one (its steps before the classifier run first).</param>
    /// <param name="data">The rows the model takes (for a chain: its input rows).</param>
    /// <param name="method">A registered method name (<see cref="AttackMethod"/>'s names), or "clean".</param>
    /// <param name="epsilon">Epsilon in pixel units of [0, 255].</param>
    /// <param name="labelColumnName">The key label column.</param>
    /// <param name="topKPredictionCount">k of the top-k accuracy.</param>
    /// <param name="progress">Receives one report per attacked batch (they also go to <c>mlContext.Log</c>).</param>
    public MulticlassClassificationMetrics Evaluate(ITransformer model, IDataView data, string method = "fgsm", double epsilon = 16,
        string labelColumnName = ColumnNames.Label, int topKPredictionCount = 5, IProgress<EvaluationProgress>? progress = null)
        => Evaluate(model, data, string.Equals(method, "clean", StringComparison.OrdinalIgnoreCase) ? null : AttackMethod.Parse(method), epsilon, labelColumnName,
            topKPredictionCount, progress);

    /// <summary>
    /// Standard ML.NET metrics (top-1 as <c>MicroAccuracy</c>, top-k) of <paramref name="model"/> on <paramref name="data"/>
    /// attacked by <paramref name="method"/> at <paramref name="epsilon"/> (pixel units); a null method scores the data as it is.
    /// </summary>
    /// <remarks>
    /// Progress (batches attacked, rows done of the total) goes to <c>mlContext.Log</c> and to <paramref name="progress"/>,
    /// one report per attacked batch.
    /// </remarks>
    /// <param name="model">The classifier, or a fitted chain holding one (its steps before the classifier run first).</param>
    /// <param name="data">The rows the model takes (for a chain: its input rows).</param>
    /// <param name="method">The method (<c>AttackMethod.Fgsm</c>, ...); null: clean.</param>
    /// <param name="epsilon">Epsilon in pixel units of [0, 255].</param>
    /// <param name="labelColumnName">The key label column.</param>
    /// <param name="topKPredictionCount">k of the top-k accuracy.</param>
    /// <param name="progress">Receives one report per attacked batch (they also go to <c>mlContext.Log</c>).</param>
    public MulticlassClassificationMetrics Evaluate(ITransformer model, IDataView data, AttackMethod? method, double epsilon = 16,
        string labelColumnName = ColumnNames.Label, int topKPredictionCount = 5, IProgress<EvaluationProgress>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var found = ClassifierInChain.Find(model, nameof(model));
        var classifier = found.Classifier;
        using var log = new EvaluationLog(_ml, "Evaluate", progress);
        long? rows = data.GetRowCount();
        string stage = $"evaluating {classifier.Spec} under {method?.ToString() ?? "clean"} at eps {epsilon}";
        log.Info($"{stage} on {(rows is { } n ? $"{n} rows" : "the data")}.");
        IDataView input;
        if (method is null) input = found.PixelsOf(data);
        else
        {
            var attack = _ml.Transforms.AdversarialAttack(model, new AdversarialAttackEstimator.Options
            {
                Method = method, Epsilon = epsilon, OutputColumnName = classifier.PixelColumnName, LabelColumnName = labelColumnName, Seed = 1,
            }).Fit(data);
            attack.BatchAttacked = AttackProgress(log, stage, rows, attack.BatchSize);
            input = attack.Transform(data);
        }
        var metrics = _ml.MulticlassClassification.Evaluate(classifier.Transform(input), labelColumnName, classifier.ScoreColumnName, classifier.PredictedLabelColumnName,
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
    /// A model with this library's classifier inside (the classifier, or a fitted chain holding it) is evaluated white-box,
    /// with every method. Any other fitted model that maps the pixel column to class scores (an ONNX network through
    /// <c>ApplyOnnxModel</c>, an ML.NET trainer), or any model given <paramref name="blackBox"/> options, is a black box,
    /// scored only through its own <c>Transform</c>: only methods that need no gradients run on it (default there:
    /// <c>square</c>; <c>autoattack</c> runs its Square part), and the report counts the images it scored
    /// (<see cref="RobustnessReport.BlackBoxQueries"/>).
    /// </summary>
    /// <param name="model">The classifier, a fitted chain holding one, or any fitted model that scores the pixel column.</param>
    /// <param name="data">The rows the model takes (for a chain: its input rows; for a black box: the pixel and label columns).</param>
    /// <param name="options">Methods, epsilons and the rest; null: the defaults (for a black box: Square at eps 2, 4, 8, 16).</param>
    /// <param name="labelColumnName">The key label column.</param>
    /// <param name="modelName">The name in the report; null: the model's architecture.</param>
    /// <param name="blackBox">Score the model as a black box with these column names and score-slot classes.</param>
    public RobustnessReport EvaluateRobustness(ITransformer model, IDataView data, RobustnessOptions? options = null,
        string labelColumnName = ColumnNames.Label, string? modelName = null, BlackBoxClassifier.Options? blackBox = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (blackBox is not null || !ClassifierInChain.Contains(model))
            return EvaluateBlackBox(model, data, options, blackBox ?? new BlackBoxClassifier.Options { LabelColumnName = labelColumnName }, modelName ?? "black-box model");
        // A fitted chain: its steps before the classifier make the pixels the classifier reads.
        var found = ClassifierInChain.Find(model, nameof(model));
        var classifier = found.Classifier;
        // The classifier knows its input range; the caller's options stay as they were given.
        options = (options ?? new RobustnessOptions()).CopyOf<RobustnessOptions>();
        options.InputRange = classifier.InputRange;
        var images = Read(classifier, found.PixelsOf(data), labelColumnName);
        return WithLog(options, "EvaluateRobustness", $"Evaluating {modelName ?? classifier.Spec.ToString()} on {images.RowCount} images",
            () => new RobustnessEvaluator(options).Evaluate(classifier.Model, images, modelName ?? classifier.Spec.ToString(), classifier.Device));
    }

    private RobustnessReport EvaluateBlackBox(ITransformer model, IDataView data, RobustnessOptions? options, BlackBoxClassifier.Options blackBox, string name)
    {
        options = options?.CopyOf<RobustnessOptions>() ?? new RobustnessOptions { Methods = new[] { AttackMethod.Square.Name } };
        var images = ImageSetReader.Read(data, blackBox.PixelColumnName, blackBox.LabelColumnName);
        CheckRange(images, options.InputRange, blackBox.PixelColumnName);
        var target = new BlackBoxClassifier(_ml, model, images.ClassNames, images.ImageShape, blackBox, name);
        return WithLog(options, "EvaluateRobustness", $"Evaluating black box {name} on {images.RowCount} images",
            () => new RobustnessEvaluator(options).Evaluate(target.AsModule(), images, target.Name, TorchSharp.torch.CPU));
    }

    /// <summary>Runs an evaluation with its progress going to <c>mlContext.Log</c> too (<paramref name="options"/> is this call's copy of the caller's).</summary>
    private T WithLog<T>(EvaluationOptions options, string operation, string what, Func<T> run)
    {
        using var log = new EvaluationLog(_ml, operation, options.Progress);
        log.Info($"{what}: {string.Join(", ", options.Methods)} at eps {string.Join(", ", options.Epsilons)}.");
        options.Progress = log;
        return run();
    }

    /// <summary>
    /// Transfer matrices between <paramref name="models"/> (each one is a source and a target): transfer rate (Table 4),
    /// error rate (Table 6), top-1 and top-5, for each method and epsilon of <paramref name="options"/>.
    /// </summary>
    public TransferReport EvaluateTransfer(IReadOnlyDictionary<string, ImageClassifierTransformer> models, IDataView data, TransferOptions? options = null,
        string labelColumnName = ColumnNames.Label)
    {
        ArgumentNullException.ThrowIfNull(models);
        if (models.Count == 0) throw new ArgumentException("Give at least one model.", nameof(models));
        var first = CheckSameInput(models.ToList());
        options = (options ?? new TransferOptions()).CopyOf<TransferOptions>();
        options.InputRange = first.InputRange;
        var images = Read(first, data, labelColumnName);
        var nets = models.ToDictionary(kv => kv.Key, kv => kv.Value.Model);
        return WithLog(options, "EvaluateTransfer", $"Transfer between {string.Join(", ", models.Keys)} on {images.RowCount} images",
            () => new TransferEvaluator(options).Evaluate(nets, nets, images, first.Device));
    }

    /// <summary>
    /// Transfer from models you have gradients for to any targets (section 4.4 as a black-box attack): adversarial
    /// examples made on each source, scored by each target. A target may be any fitted ML.NET model that maps the pixel
    /// column to class scores (ONNX through <c>ApplyOnnxModel</c>, an ML.NET trainer, a pipeline), scored through its
    /// own <c>Transform</c>; an <see cref="ImageClassifierTransformer"/> target is run directly.
    /// </summary>
    /// <param name="sources">Models the attacks differentiate; all take the same images and classes.</param>
    /// <param name="targets">Models that score the adversarial examples.</param>
    /// <param name="data">Labelled images in the sources' pixel column.</param>
    /// <param name="options">Methods and epsilons; null: FGSM, iter. basic, iter. l.l. at eps 16.</param>
    /// <param name="labelColumnName">The key-typed label column.</param>
    /// <param name="blackBox">Column names and score-slot classes of the black-box targets; null: the sources' pixel column, <paramref name="labelColumnName"/>, <c>Score</c>.</param>
    public TransferReport EvaluateTransfer(IReadOnlyDictionary<string, ImageClassifierTransformer> sources, IReadOnlyDictionary<string, ITransformer> targets,
        IDataView data, TransferOptions? options = null, string labelColumnName = ColumnNames.Label, BlackBoxClassifier.Options? blackBox = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(targets);
        if (sources.Count == 0) throw new ArgumentException("Give at least one source model.", nameof(sources));
        if (targets.Count == 0) throw new ArgumentException("Give at least one target model.", nameof(targets));
        var first = CheckSameInput(sources.Concat(targets.Where(t => t.Value is ImageClassifierTransformer)
            .Select(t => KeyValuePair.Create(t.Key, (ImageClassifierTransformer)t.Value))).ToList());
        blackBox ??= new BlackBoxClassifier.Options { PixelColumnName = first.PixelColumnName, LabelColumnName = labelColumnName };
        options = (options ?? new TransferOptions()).CopyOf<TransferOptions>();
        options.InputRange = first.InputRange;
        var images = Read(first, data, labelColumnName);
        var targetModules = targets.ToDictionary(kv => kv.Key, kv => kv.Value is ImageClassifierTransformer c
            ? c.Model
            : new BlackBoxClassifier(_ml, kv.Value, first.ClassNames, first.ImageShape, blackBox, kv.Key).AsModule());
        return WithLog(options, "EvaluateTransfer", $"Transfer from {string.Join(", ", sources.Keys)} to {string.Join(", ", targets.Keys)} on {images.RowCount} images",
            () => new TransferEvaluator(options).Evaluate(sources.ToDictionary(kv => kv.Key, kv => kv.Value.Model), targetModules, images, first.Device));
    }

    private static void CheckRange(ImageSet images, InputRange range, string pixelColumnName)
    {
        if (images.RangeProblem(range) is { } problem)
            throw new ArgumentException($"Column '{pixelColumnName}': {problem}. Set the options' InputRange to the range of the data's pixel values (attacks clip to it and epsilon is in its pixel units).");
    }

    /// <summary>The first model, after checking that every one takes the same images and classes in the same order (one label tensor serves all).</summary>
    private static ImageClassifierTransformer CheckSameInput(IReadOnlyList<KeyValuePair<string, ImageClassifierTransformer>> models)
    {
        var (firstName, first) = models[0];
        foreach (var (name, m) in models)
            if (m.ImageShape != first.ImageShape || !m.ClassNames.SequenceEqual(first.ClassNames))
                throw new ArgumentException($"Model '{name}' takes {m.ImageShape} images with classes {ClassMatch.Show(m.ClassNames.ToList())}; '{firstName}' takes " +
                    $"{first.ImageShape} with {ClassMatch.Show(first.ClassNames.ToList())}. Transfer needs models of the same input and classes, in the same order.", nameof(models));
        return first;
    }

    private static ImageSet Read(ImageClassifierTransformer model, IDataView data, string labelColumnName)
    {
        ArgumentNullException.ThrowIfNull(data);
        // Labels meet the model's classes by name, whatever order the label column's keys have.
        return ImageSetReader.Read(data, model.PixelColumnName, labelColumnName, model.ImageShape).AlignTo(model.ClassNames, $"label column '{labelColumnName}'");
    }
}
