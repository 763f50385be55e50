using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// Trains an image classifier with adversarial training (the paper's Algorithm 1), or clean training with
/// <c>AdversarialPerBatch = 0</c>, and returns an <see cref="ImageClassifierTransformer"/>.
/// </summary>
public sealed class AdversarialTrainingEstimator : IEstimator<ImageClassifierTransformer>
{
    /// <summary>Everything <see cref="AdversarialTrainingOptions"/> has, plus columns, model and device.</summary>
    public sealed class Options : AdversarialTrainingOptions
    {
        /// <summary>Name of the key-typed label column.</summary>
        public string LabelColumnName { get; set; } = ColumnNames.Label;
        /// <summary>
        /// Pixel column: <c>Vector&lt;Single, C, H, W&gt;</c>. "Pixels" (what the library's loaders write), not ML.NET's
        /// "Features": it is a shaped image the attacks also write back, not a flat feature vector (docs/design.md,
        /// "Column names"). Name it when the pipeline's ExtractPixels writes another column.
        /// </summary>
        public string FeatureColumnName { get; set; } = ColumnNames.Pixels;
        /// <summary>Name of the score column the returned transformer adds.</summary>
        public string ScoreColumnName { get; set; } = ColumnNames.Score;
        /// <summary>Name of the predicted-label column the returned transformer adds.</summary>
        public string PredictedLabelColumnName { get; set; } = ColumnNames.PredictedLabel;
        /// <summary>The network to train.</summary>
        public ModelSpec Model { get; set; } = new();
        /// <summary>"cpu", "cuda" or "cuda:N"; null follows <c>MLContext.GpuDeviceId</c> (CPU when unset).</summary>
        public string? Device { get; set; }
        /// <summary>Seed; null draws one from the MLContext's seed.</summary>
        public new int? Seed { get; set; }
        /// <summary>Where and how often to save checkpoints (none by default).</summary>
        public CheckpointOptions Checkpoints { get; set; } = new();
        /// <summary>Receives progress reports; null for none.</summary>
        public IProgress<TrainingProgress>? Progress { get; set; }
        /// <summary>Stops training between steps when cancelled.</summary>
        public CancellationToken CancellationToken { get; set; }
        /// <summary>
        /// When set, <c>Fit</c> reads the input once into a temporary file of pixels in this folder (deleted after
        /// training) instead of into memory, and trains from it row by row (read ahead per
        /// <see cref="AdversarialTrainingOptions.Prefetch"/>): for data larger than memory. Same rows, same checks,
        /// same weights as in memory. Null (the default): in memory.
        /// </summary>
        public string? DiskCacheFolder { get; set; }
        /// <summary>Rows scored at once by the returned transformer.</summary>
        public int ScoringBatchSize { get; set; } = 256;

        /// <summary>
        /// The paper's Inception v3 training recipe as TensorFlow ran it (<see cref="AdversarialTrainingOptions.PaperInceptionV3"/>:
        /// TensorFlow's RMSProp, learning rate 0.045 x 0.94 every 2 epochs, label smoothing 0.1, gradient clipping at 2.0),
        /// with the ML.NET defaults for columns, network and device. The network stays <see cref="Model"/>'s (the paper
        /// trained <c>ModelArchitecture.InceptionV3</c>); set any field afterwards.
        /// </summary>
        public static new Options PaperInceptionV3()
        {
            var options = new Options();
            options.SetPaperInceptionV3Recipe();
            return options;
        }
    }

    private readonly IHostEnvironment _env;
    private readonly Options _options;

    internal AdversarialTrainingEstimator(IHostEnvironment env, Options options)
    {
        _env = env;
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    /// <inheritdoc/>
    public ImageClassifierTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        var host = _env.Register("AdversarialTraining");
        using var onDisk = o.DiskCacheFolder is { } cache && input is not ImageSetDataView
            ? ImageSetReader.ReadToFile(input, o.FeatureColumnName, o.LabelColumnName, folder: cache) : null;
        IImageSource data = onDisk ?? (IImageSource)ImageSetReader.Read(input, o.FeatureColumnName, o.LabelColumnName);
        var device = MLNetEnvironment.ResolveDevice(o.Device, _env);
        int seed = o.Seed ?? host.Rand.Next();
        var (c, h, w) = data.ImageShape;
        // A file-backed source is checked batch by batch by the trainer.
        if (data is ImageSet inMemory && inMemory.RangeProblem(o.InputRange) is { } rangeProblem)
            throw new ArgumentOutOfRangeException(o.FeatureColumnName, $"Pixel column '{o.FeatureColumnName}': {rangeProblem}. {SchemaChecks.RangeFix(o.InputRange, o.FeatureColumnName)}");

        using var ch = host.Start("Fit");
        ch.Info(MessageSensitivity.None, $"Training {o.Model} on {data.RowCount} images {c}x{h}x{w}, {data.ClassNames.Count} classes, device {device}; " +
            (o.AdversarialPerBatch == 0 ? "clean training." : $"k = {o.AdversarialPerBatch} of m = {o.BatchSize} adversarial ({o.Method}), lambda = {o.AdversarialLossWeight}, eps {o.Epsilon}."));
        var trainer = new AdversarialTrainer(o, o.Checkpoints, message => ch.Info(MessageSensitivity.None, message), seed);
        var trained = trainer.TrainNew(o.Model, data, device, o.Progress, o.CancellationToken);
        return new ImageClassifierTransformer(trained.Model, trained.Description, device, o.FeatureColumnName, o.ScoreColumnName, o.PredictedLabelColumnName, o.ScoringBatchSize, o.LabelColumnName);
    }

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        var o = _options;
        var pixels = inputSchema.FirstOrDefault(c => c.Name == o.FeatureColumnName);
        if (pixels.Name is null)
            throw new ArgumentOutOfRangeException(o.FeatureColumnName, $"Pixel column '{o.FeatureColumnName}' not found. The input has: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        if (pixels.Kind == SchemaShape.Column.VectorKind.Scalar || pixels.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(o.FeatureColumnName, $"Pixel column '{o.FeatureColumnName}' is {pixels.Kind} of {pixels.ItemType}; expected a vector of Single.");
        if (pixels.Kind == SchemaShape.Column.VectorKind.VariableVector)
            throw new ArgumentOutOfRangeException(o.FeatureColumnName, $"Pixel column '{o.FeatureColumnName}' is a vector of unknown size; resize the images before ExtractPixels.");
        var label = inputSchema.FirstOrDefault(c => c.Name == o.LabelColumnName);
        if (label.Name is null)
            throw new ArgumentOutOfRangeException(o.LabelColumnName, $"Label column '{o.LabelColumnName}' not found. The input has: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        if (!label.IsKey && label.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(o.LabelColumnName, $"Label column '{o.LabelColumnName}' has type {label.ItemType}; expected a key (MapValueToKey) or Single.");
        return SchemaChecks.With(inputSchema,
            SchemaChecks.ShapeColumn(o.ScoreColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false,
                SchemaChecks.TextVectorAnnotationShape("SlotNames")),
            SchemaChecks.ShapeColumn(o.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true,
                SchemaChecks.TextVectorAnnotationShape("KeyValues")));
    }
}
