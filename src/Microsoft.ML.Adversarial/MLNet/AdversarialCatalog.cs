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
    public MulticlassClassificationMetrics Evaluate(ITransformer model, IDataView data, string method = "fgsm", double epsilon = 16,
        string labelColumnName = "Label", int topKPredictionCount = 5)
        => Evaluate(model, data, string.Equals(method, "clean", StringComparison.OrdinalIgnoreCase) ? null : AttackMethod.Parse(method), epsilon, labelColumnName, topKPredictionCount);

    /// <summary>
    /// Standard ML.NET metrics (top-1 as <c>MicroAccuracy</c>, top-k) of <paramref name="model"/> on <paramref name="data"/>
    /// attacked by <paramref name="method"/> at <paramref name="epsilon"/> (pixel units); a null method scores the data as it is.
    /// </summary>
    /// <param name="model">The classifier, or a fitted chain holding one (its steps before the classifier run first).</param>
    /// <param name="data">The rows the model takes (for a chain: its input rows).</param>
    /// <param name="method">The method (<c>AttackMethod.Fgsm</c>, ...); null: clean.</param>
    /// <param name="epsilon">Epsilon in pixel units of [0, 255].</param>
    /// <param name="labelColumnName">The key label column.</param>
    /// <param name="topKPredictionCount">k of the top-k accuracy.</param>
    public MulticlassClassificationMetrics Evaluate(ITransformer model, IDataView data, AttackMethod? method, double epsilon = 16,
        string labelColumnName = "Label", int topKPredictionCount = 5)
    {
        ArgumentNullException.ThrowIfNull(data);
        var found = ClassifierInChain.Find(model, nameof(model));
        var classifier = found.Classifier;
        var input = method is null ? found.PixelsOf(data)
            : _ml.Transforms.AdversarialAttack(model, new AdversarialAttackEstimator.Options
            {
                Method = method, Epsilon = epsilon, OutputColumnName = classifier.PixelColumnName, LabelColumnName = labelColumnName, Seed = 1,
            }).Fit(data).Transform(data);
        return _ml.MulticlassClassification.Evaluate(classifier.Transform(input), labelColumnName, classifier.ScoreColumnName, classifier.PredictedLabelColumnName,
            topKPredictionCount: topKPredictionCount);
    }

    /// <summary>
    /// Accuracy of <paramref name="model"/> on clean data and under every method and epsilon of <paramref name="options"/>
    /// (default: step l.l., FGSM, iter. basic, iter. l.l. at eps 2, 4, 8, 16), with 95% intervals, the adversarial/clean
    /// ratio, label-leak checks and gradient-masking warnings.
    /// </summary>
    /// <param name="model">The classifier, or a fitted chain holding one (its steps before the classifier run first).</param>
    /// <param name="data">The rows the model takes (for a chain: its input rows).</param>
    /// <param name="options">Methods, epsilons and the rest; null: the defaults.</param>
    /// <param name="labelColumnName">The key label column.</param>
    /// <param name="modelName">The name in the report; null: the model's architecture.</param>
    public RobustnessReport EvaluateRobustness(ITransformer model, IDataView data, RobustnessOptions? options = null,
        string labelColumnName = "Label", string? modelName = null)
    {
        // A fitted chain: its steps before the classifier make the pixels the classifier reads.
        var found = ClassifierInChain.Find(model, nameof(model));
        ArgumentNullException.ThrowIfNull(data);
        var classifier = found.Classifier;
        options ??= new RobustnessOptions();
        options.InputRange = classifier.InputRange;
        var images = Read(classifier, found.PixelsOf(data), labelColumnName);
        return new RobustnessEvaluator(options).Evaluate(classifier.Model, images, modelName ?? classifier.Spec.ToString(), classifier.Device);
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
        return new TransferEvaluator(options).Evaluate(nets, nets, images, first.Device);
    }

    private static ImageSet Read(ImageClassifierTransformer model, IDataView data, string labelColumnName)
    {
        ArgumentNullException.ThrowIfNull(data);
        // Labels meet the model's classes by name, whatever order the label column's keys have.
        return ImageSetReader.Read(data, model.PixelColumnName, labelColumnName, model.ImageShape).AlignTo(model.ClassNames, $"label column '{labelColumnName}'");
    }
}
