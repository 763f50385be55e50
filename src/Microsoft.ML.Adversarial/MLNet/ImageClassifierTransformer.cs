using System.Text.Json;
using Microsoft.ML.Adversarial.MLNet;
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
/// </summary>
public sealed class ImageClassifierTransformer : ITransformer
{
    internal ImageClassifierTransformer(Module<Tensor, Tensor> model, IReadOnlyList<string> classNames, (int C, int H, int W) imageShape,
        InputRange inputRange, Device device, string pixelColumnName, string scoreColumnName, string predictedLabelColumnName, int batchSize,
        ModelSpec? spec = null)
    {
        Spec = spec;
        Model = model;
        ClassNames = classNames;
        ImageShape = imageShape;
        InputRange = inputRange;
        Device = device;
        PixelColumnName = pixelColumnName;
        ScoreColumnName = scoreColumnName;
        PredictedLabelColumnName = predictedLabelColumnName;
        BatchSize = batchSize;
        model.eval();
    }

    /// <summary>The TorchSharp network (in evaluation mode); attacks use it as their source model.</summary>
    public Module<Tensor, Tensor> Model { get; }
    public IReadOnlyList<string> ClassNames { get; }
    public (int Channels, int Height, int Width) ImageShape { get; }
    public InputRange InputRange { get; }
    public Device Device { get; }
    public string PixelColumnName { get; }
    public string ScoreColumnName { get; }
    public string PredictedLabelColumnName { get; }
    public int BatchSize { get; }

    /// <summary>What the network is (null for a network the library did not build; such a transformer cannot be saved).</summary>
    public ModelSpec? Spec { get; }
    /// <summary>True: <c>CreatePredictionEngine</c> works (one row at a time; <c>Transform</c> batches).</summary>
    public bool IsRowToRowMapper => true;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        SchemaChecks.PixelShape(inputSchema, PixelColumnName, ImageShape);
        return BatchedDataView.BuildSchema(inputSchema, new Mapper(this).Outputs);
    }

    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        SchemaChecks.PixelShape(input.Schema, PixelColumnName, ImageShape);
        return new BatchedDataView(input, new Mapper(this) { BatchSize = BatchSize });
    }

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        SchemaChecks.PixelShape(inputSchema, PixelColumnName, ImageShape);
        return new BatchRowMapper(inputSchema, new Mapper(this));
    }

    internal const string LoaderSignature = "AdvImageClassifier";
    /// <summary>Layout of the saved settings; a file with a higher number was written by a newer library.</summary>
    internal const int StateVersion = 1;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "ADVCLSFR", verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(ImageClassifierTransformer).Assembly.FullName);

    private sealed record State(int StateVersion, string LibraryVersion, string PixelColumnName, string ScoreColumnName,
        string PredictedLabelColumnName, int BatchSize, float[] RangeMin, float[] RangeMax, string RangeDescription);

    /// <summary>Saved by <c>mlContext.Model.Save</c>: settings (State.json) and the network (Network.zip, a <see cref="ModelIO"/> file).</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        if (Spec is null)
            throw new NotSupportedException("This classifier wraps a network the library did not build (no ModelSpec), so mlContext.Model.Save cannot rebuild it. " +
                "Train it with AdversarialTraining, or save the network with SaveWeights.");
        if (ModelPersistence.IsDisposed(Model))
        {
            ModelPersistence.AbandonFile(ctx);
            throw new ObjectDisposedException(nameof(Model), $"The classifier's {Spec} network has been disposed, so there is nothing to save. " +
                "Save the model before disposing it, or load it again.");
        }
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        var state = new State(StateVersion, ModelIO.LibraryVersion, PixelColumnName, ScoreColumnName, PredictedLabelColumnName, BatchSize,
            InputRange.Min.ToArray(), InputRange.Max.ToArray(), InputRange.Description);
        ModelPersistence.SaveJson(ctx, state);
        var description = new ModelDescription(Spec, ClassNames.Count, ImageShape.Channels, ImageShape.Height, ImageShape.Width, ClassNames.ToArray());
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
        var classNames = description.ClassNames ?? Enumerable.Range(0, description.Classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        return new ImageClassifierTransformer(model, classNames, (description.Channels, description.Height, description.Width),
            new InputRange(state.RangeMin, state.RangeMax, state.RangeDescription), device, state.PixelColumnName, state.ScoreColumnName,
            state.PredictedLabelColumnName, state.BatchSize, description.Spec);
    }

    /// <summary>Saves the network's weights in TorchSharp's format.</summary>
    public void SaveWeights(string path) => Model.save(path);

    /// <summary>Probabilities [N, K] for images [N, C, H, W] on the transformer's device, without gradients.</summary>
    public Tensor PredictProbabilities(Tensor images)
    {
        using var _ = inference_mode();
        return functional.softmax(Model.call(images.to(Device)), 1);
    }

    private sealed class Mapper : BatchMapper
    {
        private readonly ImageClassifierTransformer _t;

        public Mapper(ImageClassifierTransformer t)
        {
            _t = t;
            int k = t.ClassNames.Count;
            Outputs = new[]
            {
                new OutputColumn(t.ScoreColumnName, new VectorDataViewType(NumberDataViewType.Single, k), SchemaChecks.TextVectorAnnotation("SlotNames", t.ClassNames)),
                new OutputColumn(t.PredictedLabelColumnName, new KeyDataViewType(typeof(uint), k), SchemaChecks.TextVectorAnnotation("KeyValues", t.ClassNames)),
            };
        }

        public override string PixelColumnName => _t.PixelColumnName;
        public override IReadOnlyList<OutputColumn> Outputs { get; }

        public override void Map(float[] pixels, long[]? labels, float[]? epsilons, int count, float[]?[] vectorOutputs, uint[]?[] keyOutputs)
        {
            using var scope = NewDisposeScope();
            var (c, h, w) = _t.ImageShape;
            var x = tensor(pixels, new long[] { pixels.Length / (c * h * w), c, h, w })[..count];
            var probs = _t.PredictProbabilities(x).cpu();
            probs.data<float>().CopyTo(vectorOutputs[0].AsSpan(0, count * _t.ClassNames.Count));
            var predicted = probs.argmax(1).data<long>();
            for (int i = 0; i < count; i++) keyOutputs[1]![i] = (uint)predicted[i] + 1;
        }
    }
}
