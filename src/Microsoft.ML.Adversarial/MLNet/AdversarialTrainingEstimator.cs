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
        public string LabelColumnName { get; set; } = "Label";
        /// <summary>Pixel column: <c>Vector&lt;Single, C, H, W&gt;</c>.</summary>
        public string FeatureColumnName { get; set; } = "Pixels";
        public string ScoreColumnName { get; set; } = "Score";
        public string PredictedLabelColumnName { get; set; } = "PredictedLabel";
        /// <summary>The network to train.</summary>
        public ModelSpec Model { get; set; } = new();
        /// <summary>"cpu", "cuda" or "cuda:N"; null follows <c>MLContext.GpuDeviceId</c> (CPU when unset).</summary>
        public string? Device { get; set; }
        /// <summary>Seed; null draws one from the MLContext's seed.</summary>
        public new int? Seed { get; set; }
        public CheckpointOptions Checkpoints { get; set; } = new();
        public IProgress<TrainingProgress>? Progress { get; set; }
        public CancellationToken CancellationToken { get; set; }
        /// <summary>Rows scored at once by the returned transformer.</summary>
        public int ScoringBatchSize { get; set; } = 256;
    }

    private readonly IHostEnvironment _env;
    private readonly Options _options;

    internal AdversarialTrainingEstimator(IHostEnvironment env, Options options)
    {
        _env = env;
        _options = options ?? throw new ArgumentNullException(nameof(options));
        options.Validate();
    }

    public ImageClassifierTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var o = _options;
        var host = _env.Register("AdversarialTraining");
        var shape = SchemaChecks.PixelShape(input.Schema, o.FeatureColumnName);
        SchemaChecks.LabelClasses(input.Schema, o.LabelColumnName);
        var data = ReadImages(input, o.FeatureColumnName, o.LabelColumnName, shape);
        var device = MLNetEnvironment.ResolveDevice(o.Device, _env);
        int seed = o.Seed ?? host.Rand.Next();

        using var ch = host.Start("Fit");
        ch.Info(MessageSensitivity.None, $"Training {o.Model} on {data.RowCount} images {shape.C}x{shape.H}x{shape.W}, {data.ClassNames.Count} classes, device {device}; " +
            (o.AdversarialPerBatch == 0 ? "clean training." : $"k = {o.AdversarialPerBatch} of m = {o.BatchSize} adversarial ({o.Method}), lambda = {o.AdversarialLossWeight}, eps {o.Epsilon}."));
        torch.manual_seed(seed);
        var model = o.Model.Create(data.ClassNames.Count, shape);
        model.to(device);
        var trainer = new AdversarialTrainer(o, o.Checkpoints, message => ch.Info(MessageSensitivity.None, message), seed);
        trainer.Train(model, data, o.Progress, o.CancellationToken);
        return new ImageClassifierTransformer(model, data.ClassNames, shape, o.InputRange, device, o.FeatureColumnName, o.ScoreColumnName, o.PredictedLabelColumnName, o.ScoringBatchSize, o.Model);
    }

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

    /// <summary>Reads a pixel column and a key (or Single) label column into memory, for shuffled epochs.</summary>
    internal static InMemoryImageDataView ReadImages(IDataView input, string pixelColumn, string labelColumn, (int C, int H, int W) shape)
    {
        if (input is InMemoryImageDataView view && view.PixelColumnName == pixelColumn && view.LabelColumnName == labelColumn) return view;
        var pix = input.Schema[pixelColumn];
        var lab = input.Schema[labelColumn];
        int size = shape.C * shape.H * shape.W;
        var pixels = new List<float>();
        var labels = new List<uint>();
        using var cursor = input.GetRowCursor(new[] { pix, lab });
        var pixelGetter = cursor.GetGetter<VBuffer<float>>(pix);
        var buffer = default(VBuffer<float>);
        Func<uint> readLabel;
        if (lab.Type is KeyDataViewType)
        {
            var g = cursor.GetGetter<uint>(lab);
            uint k = 0;
            readLabel = () =>
            {
                g(ref k);
                if (k == 0) throw new InvalidDataException($"Row {cursor.Position}: label column '{labelColumn}' is missing (key 0). Filter such rows out (FilterRowsByMissingValues) first.");
                return k - 1;
            };
        }
        else
        {
            var g = cursor.GetGetter<float>(lab);
            float f = 0;
            readLabel = () =>
            {
                g(ref f);
                if (!(f >= 0) || f != Math.Floor(f)) throw new InvalidDataException($"Row {cursor.Position}: label column '{labelColumn}' holds {f}; a Single label must be a class index 0, 1, 2, ...");
                return (uint)f;
            };
        }
        while (cursor.MoveNext())
        {
            pixelGetter(ref buffer);
            foreach (float v in buffer.DenseValues())
            {
                if (!float.IsFinite(v)) throw new InvalidDataException($"Row {cursor.Position}: pixel column '{pixelColumn}' holds {v}; clean NaN or infinite pixels out first.");
                pixels.Add(v);
            }
            labels.Add(readLabel());
        }
        if (labels.Count == 0) throw new InvalidDataException("The training data has no rows.");
        string[] classNames = lab.Type is KeyDataViewType key
            ? (ImageFolder.KeyNames(lab) ?? Enumerable.Range(0, (int)key.Count).Select(i => i.ToString()).ToArray())
            : Enumerable.Range(0, (int)labels.Max() + 1).Select(i => i.ToString()).ToArray();
        if (labels.Distinct().Count() < 2)
            throw new InvalidDataException($"Label column '{labelColumn}' holds a single class ({classNames[labels[0]]}); a classifier needs examples of at least 2 classes.");
        return InMemoryImageDataView.FromFloats(pixels.ToArray(), labels.ToArray(), classNames, shape, labelColumn, pixelColumn);
    }
}
