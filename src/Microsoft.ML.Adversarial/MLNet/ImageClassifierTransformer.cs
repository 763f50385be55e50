using Microsoft.ML.Adversarial;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

[assembly: Microsoft.ML.LoadableClass(typeof(Microsoft.ML.Adversarial.MLNet.ImageClassifierTransformer), null, typeof(Microsoft.ML.SignatureLoadModel),
    "Adversarial image classifier", Microsoft.ML.Adversarial.MLNet.ImageClassifierTransformer.LoaderSignature)]

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// Scores images with a trained TorchSharp classifier: adds <c>Score</c> (softmax probabilities,
/// <c>Vector&lt;Single, K&gt;</c>, class names as slot names) and <c>PredictedLabel</c> (a key with the class names),
/// the columns <c>mlContext.MulticlassClassification.Evaluate</c> reads. Rows are scored in batches.
/// <para>
/// Disposable, as ML.NET's own TorchSharp transformers are: <see cref="Dispose"/> frees the native network when this
/// transformer made it (trained by <c>Fit</c>, or loaded); a network you wrapped with <c>ImageClassifier(module, ...)</c>
/// stays yours to dispose.
/// </para>
/// </summary>
public sealed class ImageClassifierTransformer : ITransformer, IDisposable
{
    private readonly bool _ownsModel;
    private bool _disposed;

    internal ImageClassifierTransformer(Module<Tensor, Tensor> model, ModelDescription description, Device device,
        string pixelColumnName, string scoreColumnName, string predictedLabelColumnName, int batchSize, string labelColumnName = ColumnNames.Label, bool ownsModel = true)
    {
        _ownsModel = ownsModel;
        LabelColumnName = labelColumnName;
        Model = model;
        Description = description;
        ClassNames = description.ClassNames ?? Enumerable.Range(0, description.Classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        ImageShape = (description.Channels, description.Height, description.Width);
        InputRange = description.InputRangeOrDefault;
        Device = device;
        PixelColumnName = pixelColumnName;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
        BatchSize = batchSize;
        model.eval();
    }

    /// <summary>What the network is: architecture, classes, input shape and pixel range (what a model file stores).</summary>
    public ModelDescription Description { get; }

    /// <summary>The TorchSharp network (in evaluation mode); attacks use it as their source model.</summary>
    public Module<Tensor, Tensor> Model { get; }
    /// <summary>Class names, in the model's class order.</summary>
    public IReadOnlyList<string> ClassNames { get; }
    /// <summary>The image shape the model takes (channels, height, width).</summary>
    public (int Channels, int Height, int Width) ImageShape { get; }
    /// <summary>The pixel range the model takes.</summary>
    public InputRange InputRange { get; }
    /// <summary>The device the model runs on.</summary>
    public Device Device { get; }
    /// <summary>Name of the pixel column scored.</summary>
    public string PixelColumnName { get; }
    /// <summary>
    /// The label column whose key values order <c>Score</c> and <c>PredictedLabel</c> when the input has it (matched to
    /// <see cref="ClassNames"/> by name, so <c>Evaluate</c> compares the right classes); absent, the model's order is used.
    /// </summary>
    public string LabelColumnName { get; }
    /// <summary>Name of the score column added.</summary>
    public string ScoreColumnName { get; }
    /// <summary>Name of the predicted-label column added.</summary>
    public string PredictedLabelColumnName { get; }
    /// <summary>Rows scored at once.</summary>
    public int BatchSize { get; }

    /// <summary>The architecture the network was built from.</summary>
    public ModelSpec Spec => Description.Spec;
    /// <summary>True: <c>CreatePredictionEngine</c> works (one row at a time; <c>Transform</c> batches).</summary>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => BatchedDataView.BuildSchema(inputSchema, MapperFor(inputSchema).Outputs);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new BatchedDataView(input, MapperFor(input.Schema));
    }

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new BatchRowMapper(inputSchema, MapperFor(inputSchema));

    /// <summary>Frees the native network when this transformer made it (see the class remarks); later calls to score or save it fail, saying so.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_ownsModel) Model.Dispose();
    }

    private void ThrowIfDisposed()
    {
        if (_disposed || ModelPersistence.IsDisposed(Model))
            throw new ObjectDisposedException(nameof(ImageClassifierTransformer), $"This classifier ({Spec}) has been disposed, and its network with it. " +
                "Score with a classifier that is still alive: load the model again (mlContext.Model.Load or LoadImageClassifier).");
    }

    /// <summary>Checks the pixel column and lines the outputs up with the label column's classes (by name).</summary>
    private Mapper MapperFor(DataViewSchema schema)
    {
        ThrowIfDisposed();
        SchemaChecks.PixelShape(schema, PixelColumnName, ImageShape);
        return new Mapper(this, ClassOrder.For(schema, LabelColumnName, ClassNames)) { BatchSize = BatchSize };
    }

    internal const string LoaderSignature = "AdvImageClassifier";
    /// <summary>Layout of the saved settings; a file with a higher number was written by a newer library.</summary>
    internal const int StateVersion = 1;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "ADVCLSFR", verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(ImageClassifierTransformer).Assembly.FullName);

    private sealed record State(int StateVersion, string LibraryVersion, string PixelColumnName, string ScoreColumnName,
        string PredictedLabelColumnName, int BatchSize, float[] RangeMin, float[] RangeMax, string RangeDescription, string? LabelColumnName = null);

    /// <summary>Saved by <c>mlContext.Model.Save</c>: settings (State.json) and the network (Network.zip, a <see cref="ModelIO"/> file).</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        if (_disposed || ModelPersistence.IsDisposed(Model))
        {
            ModelPersistence.AbandonFile(ctx);
            throw new ObjectDisposedException(nameof(Model), $"The classifier's {Spec} network has been disposed, so there is nothing to save. " +
                "Save the model before disposing it, or load it again.");
        }
        if (!Architectures.Of(Spec.Architecture).Rebuildable)
        {
            ModelPersistence.AbandonFile(ctx);
            throw new NotSupportedException(ModelSpec.CustomCannotBeRebuilt);
        }
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        var state = new State(StateVersion, ModelIO.LibraryVersion, PixelColumnName, ScoreColumnName, PredictedLabelColumnName, BatchSize,
            InputRange.Min.ToArray(), InputRange.Max.ToArray(), InputRange.Description, LabelColumnName);
        ModelPersistence.SaveJson(ctx, state);
        var description = Description with { InputRange = InputRange };
        var network = new MemoryStream();
        ModelIO.Write(Model, description, network);
        ModelPersistence.SaveEntry(ctx, ModelPersistence.NetworkEntry, network.ToArray());
    }

    /// <summary>Called by <c>mlContext.Model.Load</c> through the LoadableClass registration.</summary>
    private static ImageClassifierTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        var state = ModelPersistence.LoadJson<State>(ctx, s => s.StateVersion, StateVersion, s => s.LibraryVersion);
        var device = MLNetEnvironment.ResolveDevice(null, env);
        var (model, description) = ModelPersistence.LoadNetwork(ctx, device);
        // State.json's range is authoritative: files written before model files stored the range have it only there.
        var range = new InputRange(state.RangeMin, state.RangeMax, state.RangeDescription);
        return new ImageClassifierTransformer(model, description with { InputRange = range }, device, state.PixelColumnName, state.ScoreColumnName,
            state.PredictedLabelColumnName, state.BatchSize, state.LabelColumnName ?? ColumnNames.Label);
    }

    /// <summary>Saves the network's weights in TorchSharp's format.</summary>
    public void SaveWeights(string path) => Model.save(path);

    /// <summary>Probabilities [N, K] for images [N, C, H, W] on the transformer's device, without gradients.</summary>
    public Tensor PredictProbabilities(Tensor images)
    {
        using var _ = inference_mode();
        // Scoring runs like the attacks: channels-last input, BatchNorm folded (fp32; equal up to rounding).
        var network = Model.training ? Model : ComputeModel.For(Model, ComputeOptions.Default, evaluationOnly: true) ?? Model;
        using var hold = ComputeModel.HoldFor(network);
        return functional.softmax(network.call(images.to(Device)), 1);
    }

    private sealed class Mapper : BatchMapper
    {
        private readonly ImageClassifierTransformer _t;
        private readonly ClassOrder _order;
        private readonly string _rangeFix;

        public Mapper(ImageClassifierTransformer t, ClassOrder order)
        {
            _t = t;
            _order = order;
            _rangeFix = SchemaChecks.RangeFix(t.InputRange, t.PixelColumnName);
            int k = order.Names.Count;
            Outputs = new[]
            {
                new OutputColumn(t.ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, k), SchemaChecks.TextVectorAnnotation("SlotNames", order.Names)),
                new OutputColumn(t.PredictedLabelColumnName, new KeyDataViewType(typeof(uint), k), SchemaChecks.TextVectorAnnotation("KeyValues", order.Names)),
            };
        }

        public override string PixelColumnName => _t.PixelColumnName;
        public override IReadOnlyList<OutputColumn> Outputs { get; }

        public override void Map(float[] pixels, long[]? labels, float[]? epsilons, int count, float[]?[] vectorOutputs, uint[]?[] keyOutputs)
        {
            using var scope = NewDisposeScope();
            var (c, h, w) = _t.ImageShape;
            var x = tensor(pixels, new long[] { pixels.Length / (c * h * w), c, h, w })[..count];
            // A score of pixels outside the model's range (0..255 for a [0, 1] model) or of NaN would look like any other.
            _t.InputRange.Check(x, _rangeFix);
            var probs = _t.PredictProbabilities(x).cpu();
            if (_order.ModelIndex is { } modelIndex) probs = probs.index_select(1, tensor(modelIndex.Select(i => (long)i).ToArray()));
            probs.contiguous().data<float>().CopyTo(vectorOutputs[0].AsSpan(0, count * _order.Names.Count));
            var predicted = probs.argmax(1).data<long>();
            for (int i = 0; i < count; i++) keyOutputs[1]![i] = (uint)predicted[i] + 1;
        }
    }
}
