using System.CommandLine;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>
/// ONNX files as models of the CLI: scored through ML.NET's ApplyOnnxModel, as black boxes (scores only). They run the
/// methods that need no gradients (square, autoattack's Square part) and are transfer targets.
/// </summary>
internal static class OnnxModels
{
    public static readonly Option<string?> Classes = new("--onnx-classes")
    {
        Description = "Class names of an .onnx model's outputs, in output order (comma list); default: output k is class k of the data",
    };

    public static readonly Option<string> Range = new("--onnx-range")
    {
        Description = "Values an .onnx model takes: unit, symmetric, pixels, imagenet or mean=M1,M2,M3;std=S1,S2,S3",
        DefaultValueFactory = _ => "unit",
    };

    public static void AddOptions(System.CommandLine.Command c)
    {
        c.Options.Add(Classes);
        c.Options.Add(Range);
    }

    public static bool IsOnnx(string path) => string.Equals(Path.GetExtension(path), ".onnx", StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// The network in <paramref name="path"/> as a black-box module: its first input takes [N, C, H, W] images (shape
    /// read from the file; N free), its first output gives [N, K] class scores.
    /// </summary>
    public static (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) Load(string path, ParseResult p)
    {
        if (!File.Exists(path)) throw new CliException($"Model file '{path}' does not exist.");
        string input, output;
        long[] inputDims, outputDims;
        try
        {
            using var session = new InferenceSession(path);
            (input, var inMeta) = session.InputMetadata.First();
            (output, var outMeta) = session.OutputMetadata.First();
            inputDims = inMeta.Dimensions.Select(d => (long)d).ToArray();
            outputDims = outMeta.Dimensions.Select(d => (long)d).ToArray();
        }
        catch (OnnxRuntimeException e)
        {
            throw new CliException($"'{path}' is not an ONNX model ONNX Runtime can load: {e.Message}");
        }
        if (inputDims.Length != 4 || inputDims.Skip(1).Any(d => d < 1))
            throw new CliException($"ONNX model '{path}': input '{input}' has shape [{string.Join(", ", inputDims)}]; an image classifier's input must be [N, C, H, W] with fixed C, H, W.");
        if (outputDims.Length != 2 || outputDims[1] < 2)
            throw new CliException($"ONNX model '{path}': output '{output}' has shape [{string.Join(", ", outputDims)}]; class scores must be [N, K] with a fixed K of at least 2.");
        var shape = ((int)inputDims[1], (int)inputDims[2], (int)inputDims[3]);
        int classes = (int)outputDims[1];
        var names = p.GetValue(Classes) is { } list ? CommonOptions.ParseClasses(list, null) : null;
        if (names is not null && names.Count != classes)
            throw new CliException($"--onnx-classes names {names.Count} classes; output '{output}' of '{path}' has {classes}.");
        var range = CommonOptions.ParseRange(p.GetValue(Range)!);
        // Without names the outputs are taken in the data's class order, so the black box is built on index names.
        var scoreClasses = names ?? Enumerable.Range(0, classes).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList();
        var ml = new MLContext(seed: 1);
        var probe = new ImageSetDataView(ImageSet.FromFloats(new float[shape.Item1 * shape.Item2 * shape.Item3], new uint[1], scoreClasses, shape));
        IEstimator<ITransformer> pipeline = ml.Transforms.ApplyOnnxModel(output, input, path);
        if (input != probe.PixelColumnName) pipeline = ml.Transforms.CopyColumns(input, probe.PixelColumnName).Append(pipeline);
        var blackBox = new BlackBoxClassifier(ml, pipeline.Fit(probe), scoreClasses, shape,
            new BlackBoxClassifier.Options { ScoreColumnName = output, ScoreClassNames = scoreClasses }, Path.GetFileNameWithoutExtension(path));
        var description = new ModelDescription(new ModelSpec(ModelArchitecture.Custom), classes, shape.Item1, shape.Item2, shape.Item3, names) { InputRange = range };
        return (blackBox.AsModule(), description);
    }
}
