using System.Text.Json;
using System.Text.Json.Serialization;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>The networks the library can build by name.</summary>
public enum ModelArchitecture
{
    /// <summary><see cref="Models.SmallCnn"/>: two convolutions and two dense layers, for small grey or colour images.</summary>
    SmallCnn,
    /// <summary><see cref="Models.SmallResNet"/>: a CIFAR-style ResNet with BatchNorm, for 32 x 32 colour images.</summary>
    SmallResNet,
    /// <summary><see cref="Models.InceptionV3"/>: the paper's network, torchvision's parameter names; 75 x 75 and up.</summary>
    InceptionV3,
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

    /// <summary>SmallResNet: basic blocks per stage (1 gives 8 layers, 3 gives ResNet-20).</summary>
    public int BlocksPerStage { get; init; } = 1;

    public static ModelSpec SmallCnnDefault { get; } = new();

    /// <summary>A new, randomly initialised network for images of <paramref name="shape"/> and <paramref name="classes"/> classes.</summary>
    public Module<Tensor, Tensor> Create(int classes, (int Channels, int Height, int Width) shape)
    {
        if (shape.Height != shape.Width)
            throw new ArgumentException($"{Architecture} needs square images; got {shape.Height}x{shape.Width}. Resize them (ResizeImages) first.");
        return Architecture switch
        {
            ModelArchitecture.SmallCnn => new SmallCnn(classes, Rho, Activation, Dropout, inChannels: shape.Channels, imageSide: shape.Height),
            ModelArchitecture.SmallResNet => new SmallResNet(classes, Rho, Activation, shape.Channels, BlocksPerStage),
            ModelArchitecture.InceptionV3 when shape.Height < 75 =>
                throw new ArgumentException($"InceptionV3 needs images of at least 75x75; got {shape.Height}x{shape.Width}. Resize them (ResizeImages) first."),
            ModelArchitecture.InceptionV3 => new InceptionV3(classes, Rho, Deeper, AuxLogits, Dropout, Activation, shape.Channels),
            _ => throw new ArgumentOutOfRangeException(nameof(Architecture), Architecture, "Unknown architecture."),
        };
    }

    /// <summary>Checks the numbers before anything is built or loaded: rho &gt; 0, dropout in [0, 1), at least one block per stage.</summary>
    public void Validate()
    {
        ModelChecks.Width(Rho);
        if (!(Dropout >= 0 && Dropout < 1)) throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, $"Dropout must lie in [0, 1); got {Dropout}.");
        if (BlocksPerStage < 1) throw new ArgumentOutOfRangeException(nameof(BlocksPerStage), BlocksPerStage, "BlocksPerStage must be at least 1.");
    }

    /// <summary>Parses "smallcnn", "smallresnet", "inceptionv3" (also "inception-v3", "resnet").</summary>
    public static ModelArchitecture ParseArchitecture(string text) => text.Trim().ToLowerInvariant().Replace("-", "").Replace("_", "") switch
    {
        "smallcnn" or "cnn" => ModelArchitecture.SmallCnn,
        "smallresnet" or "resnet" => ModelArchitecture.SmallResNet,
        "inceptionv3" or "inception" => ModelArchitecture.InceptionV3,
        _ => throw new ArgumentException($"Unknown architecture '{text}'. Known: smallcnn, smallresnet, inceptionv3."),
    };

    private static readonly JsonSerializerOptions Json = new() { Converters = { new JsonStringEnumConverter() } };

    /// <summary>The spec as JSON (stored with saved models).</summary>
    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static ModelSpec FromJson(string json) =>
        JsonSerializer.Deserialize<ModelSpec>(json, Json) ?? throw new FormatException("The model description is empty.");

    public override string ToString()
    {
        var extras = new List<string> { $"rho {Rho}", (Activation ?? ActivationSpec.Relu).ToString() };
        if (Dropout > 0) extras.Add($"dropout {Dropout}");
        if (Deeper) extras.Add("deeper");
        if (AuxLogits) extras.Add("aux logits");
        if (Architecture == ModelArchitecture.SmallResNet && BlocksPerStage != 1) extras.Add($"{BlocksPerStage} blocks/stage");
        return $"{Architecture} ({string.Join(", ", extras)})";
    }
}
