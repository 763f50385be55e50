using Microsoft.ML;
using Microsoft.ML.Data;

namespace RobustImageClassifierSample;

/// <summary>
/// A model the audit can only score: an ML.NET trainer on the pixels, exported to ONNX with
/// <c>mlContext.Model.ConvertToOnnx</c> and scored back through <c>ApplyOnnxModel</c>, as a model shipped as an ONNX
/// file would be.
/// </summary>
public static class OnnxTarget
{
    /// <summary>The trainer's flat feature column, made inside the exported pipeline from <c>Pixels</c>.</summary>
    /// <remarks>
    /// A trainer fed ExtractPixels' <c>Vector&lt;Single, 1, 28, 28&gt;</c> directly exports (ConvertToOnnx succeeds) to a
    /// graph whose LinearClassifier node gets a [-1, 1, 28, 28] input, and ONNX Runtime refuses to load it:
    /// "Node (LinearClassifier) Op (LinearClassifier) [ShapeInferenceError] Input's shape should be 1D or 2D". A
    /// <c>Concatenate</c> of the one column into a plain Vector&lt;Single, 784&gt; in front of the trainer fixes it;
    /// exported with the model, the ONNX graph still reads <c>Pixels</c> (ONNX Runtime then warns once that it merges
    /// the two declared shapes of the concatenation's output leniently, which is harmless).
    /// </remarks>
    public const string FeaturesColumnName = "Features";

    /// <summary>The ONNX output requested from ApplyOnnxModel: ML.NET's export names outputs "&lt;column&gt;.output".</summary>
    public const string OnnxOutputName = "Score.output";

    /// <summary>The column ApplyOnnxModel gives for <see cref="OnnxOutputName"/> (it drops the ".output" suffix of ML.NET's exports): class probabilities, no slot names.</summary>
    public const string ScoreColumnName = "Score";

    /// <summary>
    /// Trains SdcaMaximumEntropy on <paramref name="trainPixels"/> (key <c>Label</c>, <c>Pixels</c>) and writes it
    /// to <paramref name="onnxPath"/>. Returns the ML.NET model and the class names of its score slots, in slot order
    /// (the label's key values; the ONNX output has no slot names).
    /// </summary>
    public static (ITransformer Model, IReadOnlyList<string> SlotClasses) TrainAndExport(MLContext mlContext, IDataView trainPixels, string onnxPath, int iterations = 20)
    {
        var model = mlContext.Transforms.Concatenate(FeaturesColumnName, "Pixels")
            .Append(mlContext.MulticlassClassification.Trainers.SdcaMaximumEntropy(labelColumnName: "Label", featureColumnName: FeaturesColumnName,
                maximumNumberOfIterations: iterations))
            .Fit(trainPixels);
        // The graph's inputs are the columns of the view given here: the pixels only. (With the label column too, the
        // graph takes it as a second input that ApplyOnnxModel does not feed, and ONNX Runtime fails on its Identity node.)
        var pixelsOnly = mlContext.Transforms.SelectColumns("Pixels").Fit(trainPixels).Transform(trainPixels);
        using (var stream = File.Create(onnxPath))
            mlContext.Model.ConvertToOnnx(model, pixelsOnly, stream);
        VBuffer<ReadOnlyMemory<char>> keys = default;
        trainPixels.Schema["Label"].GetKeyValues(ref keys);
        return (model, keys.DenseValues().Select(k => k.ToString()).ToList());
    }

    /// <summary>The ONNX file as an ML.NET model over the <c>Pixels</c> column (the graph holds the flattening).</summary>
    public static ITransformer Load(MLContext mlContext, string onnxPath, IDataView data) =>
        mlContext.Transforms.ApplyOnnxModel(outputColumnNames: new[] { OnnxOutputName }, inputColumnNames: new[] { "Pixels" }, modelFile: onnxPath)
            .Fit(data);
}
