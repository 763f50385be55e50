using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML;

/// <summary>
/// Bring your own model: wrap a TorchSharp network, or import PyTorch weights of a torchvision architecture, as the
/// ML.NET classifier (<see cref="ImageClassifierTransformer"/>) that every attack transform, the evaluators, prediction
/// engines and <c>mlContext.Model.Save</c>/<c>Load</c> take.
/// </summary>
public static class ImageClassifierCatalogExtensions
{
    /// <summary>
    /// Wraps <paramref name="module"/> (any <c>Module&lt;Tensor, Tensor&gt;</c> mapping images [N, C, H, W] to logits
    /// [N, K]) as a fitted classifier. The module is used where it lives (its parameters' device) and is put in evaluation mode.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Transforms</c>.</param>
    /// <param name="module">The network; it outputs logits (softmax is applied for <c>Score</c>).</param>
    /// <param name="classNames">The K class names, in the order of the module's outputs (matched to the label column's keys by name).</param>
    /// <param name="imageShape">The input shape (channels, height, width) the pixel column holds.</param>
    /// <param name="inputRange">The values the module takes (default [0, 1]; <see cref="InputRange.Normalized"/> for per-channel
    /// mean/std such as <see cref="InputRange.ImageNet"/>). Attacks convert epsilon and clip with it.</param>
    /// <param name="architecture">What the module is, when the library can rebuild it (for example
    /// <c>new ModelSpec(ModelArchitecture.ResNet18)</c>); its names and shapes are checked against it, and
    /// <c>mlContext.Model.Save</c> then works. Null: a <see cref="ModelArchitecture.Custom"/> network, which scores and can be
    /// attacked but not saved (<see cref="NotSupportedException"/>).</param>
    /// <param name="pixelColumnName">The pixel column (<c>Vector&lt;Single, C, H, W&gt;</c>).</param>
    /// <param name="scoreColumnName">The probabilities column written.</param>
    /// <param name="predictedLabelColumnName">The predicted key column written.</param>
    /// <param name="labelColumnName">The label column whose key values order the outputs when the input has it.</param>
    /// <param name="batchSize">Rows scored at once.</param>
    public static ImageClassifierTransformer ImageClassifier(this TransformsCatalog catalog, Module<Tensor, Tensor> module,
        IReadOnlyList<string> classNames, (int Channels, int Height, int Width) imageShape, InputRange? inputRange = null,
        ModelSpec? architecture = null, string pixelColumnName = ColumnNames.Pixels, string scoreColumnName = ColumnNames.Score,
        string predictedLabelColumnName = ColumnNames.PredictedLabel, string labelColumnName = ColumnNames.Label, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        TorchBackend.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(classNames);
        var range = inputRange ?? InputRange.UnitInterval;
        var description = Describe(classNames, imageShape, range, architecture ?? new ModelSpec(ModelArchitecture.Custom));
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batchSize must be at least 1.");
        if (ModelPersistence.IsDisposed(module))
            throw new ObjectDisposedException(nameof(module), "The module has no parameters or has been disposed; wrap a live network.");
        var device = module.parameters().First().device;
        if (architecture is not null) ModelIO.CheckArchitecture(module, description);
        CheckOutputs(module, description, device);
        return new ImageClassifierTransformer(module, description, device, pixelColumnName, scoreColumnName, predictedLabelColumnName, batchSize, labelColumnName, ownsModel: false);
    }

    /// <summary>
    /// Builds <paramref name="architecture"/> (a torchvision name such as "resnet18", "vgg16_bn", "mobilenet_v2", "googlenet",
    /// "inception_v3", or any architecture <see cref="ModelSpec.ParseArchitecture"/> knows) and loads the PyTorch state dict
    /// <paramref name="weightsPath"/> (<c>torch.save(model.state_dict(), path)</c>) into it, after checking every name and shape,
    /// then wraps it as with <see cref="ImageClassifier(TransformsCatalog, Module{Tensor, Tensor}, IReadOnlyList{string}, ValueTuple{int, int, int}, InputRange?, ModelSpec?, string, string, string, string, int)"/>.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Transforms</c>.</param>
    /// <param name="architecture">The architecture name.</param>
    /// <param name="weightsPath">The state dict (PyTorch, safetensors-free <c>torch.save</c> file) or TorchSharp weights.</param>
    /// <param name="classNames">The class names, in the order of the network's outputs.</param>
    /// <param name="imageShape">The input shape (3 channels for the torchvision architectures).</param>
    /// <param name="inputRange">The values the network takes; torchvision's ImageNet models take <see cref="InputRange.ImageNet"/>.</param>
    /// <param name="pixelColumnName">The pixel column.</param>
    /// <param name="device">"cpu", "cuda" or "cuda:N"; null follows <c>MLContext.GpuDeviceId</c>.</param>
    public static ImageClassifierTransformer ImportPyTorchClassifier(this TransformsCatalog catalog, string architecture, string weightsPath,
        IReadOnlyList<string> classNames, (int Channels, int Height, int Width) imageShape, InputRange? inputRange = null,
        string pixelColumnName = ColumnNames.Pixels, string? device = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        TorchBackend.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(architecture);
        var spec = new ModelSpec(ModelSpec.ParseArchitecture(architecture));
        var description = Describe(classNames, imageShape, inputRange ?? InputRange.UnitInterval, spec);
        var module = ModelIO.Import(description, weightsPath, MLNetEnvironment.ResolveDevice(device, MLNetEnvironment.From(catalog)));
        return catalog.ImageClassifier(module, classNames, imageShape, inputRange, spec, pixelColumnName);
    }

    /// <summary>
    /// Loads a model file written by <c>advml train</c>/<c>advml import</c> or <c>ModelIO.Save</c> (an <c>.advml</c> file) as
    /// the ML.NET classifier, with its class names, input shape and pixel range. ML.NET's own <c>mlContext.Model.Load</c>
    /// reads ML.NET model zips only (for an <c>.advml</c> file it says "Could not load legacy format model"); this reads both
    /// kinds' intent clearly: an ML.NET zip given here is refused with the call to use instead.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Model</c>.</param>
    /// <param name="path">The <c>.advml</c> file.</param>
    /// <param name="pixelColumnName">The pixel column the classifier reads.</param>
    /// <param name="labelColumnName">The label column whose key values order the outputs when the input has it.</param>
    /// <param name="device">"cpu", "cuda" or "cuda:N"; null follows <c>MLContext.GpuDeviceId</c>.</param>
    public static ImageClassifierTransformer LoadImageClassifier(this ModelOperationsCatalog catalog, string path, string pixelColumnName = ColumnNames.Pixels,
        string labelColumnName = ColumnNames.Label, string? device = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        TorchBackend.EnsureLoaded();
        ArgumentNullException.ThrowIfNull(path);
        if (File.Exists(path) && ModelPersistence.IsMLNetModelZip(path))
            throw new InvalidDataException($"'{path}' is an ML.NET model zip (written by mlContext.Model.Save), not an advml model file; load it with mlContext.Model.Load.");
        var resolved = MLNetEnvironment.ResolveDevice(device, MLNetEnvironment.From(catalog));
        var (model, description) = ModelIO.Load(path, resolved);
        return new ImageClassifierTransformer(model, description, resolved, pixelColumnName, ColumnNames.Score, ColumnNames.PredictedLabel, 256, labelColumnName);
    }

    private static ModelDescription Describe(IReadOnlyList<string> classNames, (int Channels, int Height, int Width) shape, InputRange range, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(classNames);
        if (classNames.Count < 2 || classNames.Any(string.IsNullOrEmpty))
            throw new ArgumentException($"Give the names of at least 2 classes, none empty; got {classNames.Count}.", nameof(classNames));
        var duplicate = classNames.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            throw new ArgumentException($"Class name '{duplicate.Key}' appears {duplicate.Count()} times; each class needs its own name.", nameof(classNames));
        if (shape.Channels < 1 || shape.Height < 1 || shape.Width < 1)
            throw new ArgumentOutOfRangeException(nameof(shape), shape, "The image shape (channels, height, width) must be positive.");
        if (range.Channels != 1 && range.Channels != shape.Channels)
            throw new ArgumentException($"The input range {range} has {range.Channels} channels but the images have {shape.Channels}.", "inputRange");
        var description = new ModelDescription(spec, classNames.Count, shape.Channels, shape.Height, shape.Width, classNames.ToArray()) { InputRange = range };
        if (Architectures.Of(spec.Architecture).Rebuildable) description.Validate();
        return description;
    }

    /// <summary>One forward pass on a blank image: the module must give [1, K] logits for the K class names.</summary>
    private static void CheckOutputs(Module<Tensor, Tensor> module, ModelDescription d, Device device)
    {
        OneDnn.EnsureDecided(); // this pass may be the process's first convolution (oneDNN off on CPUs without cache sizes)
        using var scope = NewDisposeScope();
        using var mode = ModelMode.Set(module, training: false);
        var x = InputRangeCentre(d.InputRangeOrDefault, d.Channels, d.Height, d.Width).to(device);
        Tensor y;
        try
        {
            using var _ = no_grad();
            y = module.call(x);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.Runtime.InteropServices.ExternalException)
        {
            throw new ArgumentException($"The module cannot take {d.Channels}x{d.Height}x{d.Width} images ({e.Message.Split('\n')[0]}). Give the image shape it was built for.", "imageShape", e);
        }
        if (y.dim() != 2 || y.shape[0] != 1 || y.shape[1] != d.Classes)
            throw new ArgumentException($"The module gives outputs of shape [{string.Join(", ", y.shape)}] for one image; {d.Classes} class names need [1, {d.Classes}] logits. " +
                "Give one name per output, in the output order.", "classNames");
    }

    private static Tensor InputRangeCentre(InputRange range, int c, int h, int w)
    {
        var centre = range.Min.Zip(range.Max, (a, b) => (a + b) / 2).ToArray();
        var x = zeros(1, c, h, w);
        return centre.Length == 1 ? x.Plus(centre[0]) : x.Plus(tensor(centre).view(1, c, 1, 1));
    }

}
