using System.Text.Json;
using System.Text.Json.Serialization;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// The networks the library can build by name (the name model files store). What each one is, its names, builder,
/// smallest side and parameter count, is its <see cref="ArchitectureDescriptor"/> in <see cref="Architectures.All"/>.
/// </summary>
public enum ModelArchitecture
{
    /// <summary><see cref="Models.SmallCnn"/>: two convolutions and two dense layers, for small grey or colour images.</summary>
    SmallCnn,
    /// <summary><see cref="Models.SmallResNet"/>: a CIFAR-style ResNet with BatchNorm, for 32 x 32 colour images.</summary>
    SmallResNet,
    /// <summary><see cref="Models.InceptionV3"/>: the paper's network, torchvision's parameter names; 75 x 75 and up.</summary>
    InceptionV3,
    /// <summary>torchvision's ResNet-18 (TorchSharp's TorchVision; 3-channel images of 32 x 32 and up).</summary>
    ResNet18,
    /// <summary>torchvision's ResNet-34.</summary>
    ResNet34,
    /// <summary>torchvision's ResNet-50.</summary>
    ResNet50,
    /// <summary>torchvision's ResNet-101.</summary>
    ResNet101,
    /// <summary>torchvision's VGG-11.</summary>
    Vgg11,
    /// <summary>torchvision's VGG-11 with BatchNorm.</summary>
    Vgg11Bn,
    /// <summary>torchvision's VGG-13.</summary>
    Vgg13,
    /// <summary>torchvision's VGG-16.</summary>
    Vgg16,
    /// <summary>torchvision's VGG-16 with BatchNorm.</summary>
    Vgg16Bn,
    /// <summary>torchvision's VGG-19.</summary>
    Vgg19,
    /// <summary>torchvision's MobileNet v2.</summary>
    MobileNetV2,
    /// <summary>torchvision's GoogLeNet (Inception v1) without the auxiliary classifiers.</summary>
    GoogLeNet,
    /// <summary>torchvision's AlexNet (images of 63 x 63 and up).</summary>
    AlexNet,
    /// <summary>
    /// A network the caller built and wrapped (<c>mlContext.Transforms.ImageClassifier(module, ...)</c> without an
    /// architecture): it scores and can be attacked, but the library cannot rebuild it, so it cannot be saved in a model file.
    /// </summary>
    Custom,
}

/// <summary>
/// What to build: architecture, width multiplier rho, activation and dropout, plus the options of single architectures
/// (<see cref="Deeper"/> and <see cref="AuxLogits"/> for Inception v3, <see cref="BlocksPerStage"/> for the ResNet).
/// </summary>
public sealed record ModelSpec(ModelArchitecture Architecture = ModelArchitecture.SmallCnn, double Rho = 1, ActivationSpec? Activation = null, double Dropout = 0)
{
    /// <summary>Inception v3: two extra Inception blocks (the paper's "deeper model", Table 1).</summary>
    public bool Deeper { get; init; }

    /// <summary>Inception v3: the auxiliary classifier, whose loss is added with weight 0.4 during training.</summary>
    public bool AuxLogits { get; init; }

    /// <summary>
    /// Inception v3: torchvision's <c>transform_input</c>. The network first maps ImageNet-normalised input to the
    /// [-1, 1] scaling of Google's original weights (channel c: x * std[c] / 0.5 + (mean[c] - 0.5) / 0.5). torchvision
    /// sets it whenever pretrained weights are loaded (<c>inception_v3(weights=...)</c>); set it for such a state dict,
    /// whose input is then ImageNet-normalised (<c>InputRange.ImageNet</c>). It holds no weights, so the state dict is the same either way.
    /// </summary>
    public bool TransformInput { get; init; }

    /// <summary>SmallResNet: basic blocks per stage (1 gives 8 layers, 3 gives ResNet-20).</summary>
    public int BlocksPerStage { get; init; } = 1;

    /// <summary>The default SmallCnn.</summary>
    public static ModelSpec SmallCnnDefault { get; } = new();

    /// <summary>A new, randomly initialised network for images of <paramref name="shape"/> and <paramref name="classes"/> classes.</summary>
    public Module<Tensor, Tensor> Create(int classes, (int Channels, int Height, int Width) shape)
    {
        var architecture = Architectures.Of(Architecture);
        if (shape.Height != shape.Width)
            throw new ArgumentException($"{Architecture} needs square images; got {shape.Height}x{shape.Width}. Resize them (ResizeImages) first.");
        // Recorded so a ComputeModel can rebuild the network for its replica (bfloat16, BatchNorm folded).
        return ModelReplicas.Register(architecture.Create(this, classes, shape), () => Create(classes, shape));
    }

    /// <summary>Why a <see cref="ModelArchitecture.Custom"/> network cannot be saved or rebuilt, and what to do.</summary>
    internal static string CustomCannotBeRebuilt => Architectures.CustomCannotBeRebuilt;

    /// <summary>
    /// Checks the numbers before anything is built or loaded: rho &gt; 0, dropout in [0, 1), at least one block per
    /// stage, and what the architecture takes (<see cref="ArchitectureDescriptor"/>).
    /// </summary>
    public void Validate()
    {
        var architecture = Architectures.Of(Architecture);
        ModelChecks.Width(Rho);
        architecture.CheckSpec?.Invoke(this);
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, $"Dropout must lie in [0, 1); got {Dropout}.");
        if (BlocksPerStage < 1) throw new ArgumentOutOfRangeException(nameof(BlocksPerStage), BlocksPerStage, "BlocksPerStage must be at least 1.");
        if (TransformInput && !architecture.TakesTransformInput)
            throw new ArgumentException($"TransformInput is torchvision's transform_input of Inception v3; {Architecture} has none. Turn it off.", nameof(TransformInput));
    }

    /// <summary>
    /// Parses "smallcnn", "smallresnet", "inceptionv3" (also "inception-v3", "resnet") and torchvision's names
    /// ("resnet18", "vgg16_bn", "mobilenet_v2", "googlenet", "alexnet", "inception_v3"): every name and alias in
    /// <see cref="Architectures.All"/>.
    /// </summary>
    public static ModelArchitecture ParseArchitecture(string text) => Architectures.Parse(text).Architecture;

    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>The spec as JSON (stored with saved models).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The spec from its JSON (<see cref="ToJson"/>).</summary>
    /// <param name="json">The JSON text.</param>
    public static ModelSpec FromJson(string json) =>
        JsonSerializer.Deserialize<ModelSpec>(json, Json) ?? throw new FormatException("The model description is empty.");

    /// <summary>A one-line description, e.g. <c>SmallCnn (rho 1, relu)</c>.</summary>
    public override string ToString()
    {
        var extras = new List<string> { string.Create(System.Globalization.CultureInfo.InvariantCulture, $"rho {Rho}"), (Activation ?? ActivationSpec.Relu).ToString() };
        if (Dropout > 0) extras.Add(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"dropout {Dropout}"));
        if (Deeper) extras.Add("deeper");
        if (AuxLogits) extras.Add("aux logits");
        if (TransformInput) extras.Add("transform input");
        if (Architecture == ModelArchitecture.SmallResNet && BlocksPerStage != 1) extras.Add($"{BlocksPerStage} blocks/stage");
        return $"{Architecture} ({string.Join(", ", extras)})";
    }
}
