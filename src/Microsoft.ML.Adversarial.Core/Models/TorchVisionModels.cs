using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// The torchvision architectures the library can rebuild by name (TorchSharp's TorchVision package, whose parameter
/// and buffer names are torchvision's, so <c>torch.save(model.state_dict(), path)</c> from PyTorch loads by name), plus
/// the library's own <see cref="InceptionV3"/> (torchvision's names too). All take 3-channel images; their adaptive
/// pooling makes them work at any side from <see cref="MinSide"/> up.
/// </summary>
public static class TorchVisionModels
{
    /// <summary>The torchvision architectures, with torchvision's function name, the classifier's input width and
    /// the parameter-and-buffer count without the classifier (measured on torchvision 0.14 with 10 classes).</summary>
    private static readonly Dictionary<ModelArchitecture, (string Name, int MinSide, long Base, long ClassifierInputs)> Table = new()
    {
        [ModelArchitecture.ResNet18] = ("resnet18", 32, 11_186_132, 512),
        [ModelArchitecture.ResNet34] = ("resnet34", 32, 21_301_732, 512),
        [ModelArchitecture.ResNet50] = ("resnet50", 32, 23_561_205, 2048),
        [ModelArchitecture.ResNet101] = ("resnet101", 32, 42_605_608, 2048),
        [ModelArchitecture.Vgg11] = ("vgg11", 32, 128_766_336, 4096),
        [ModelArchitecture.Vgg11Bn] = ("vgg11_bn", 32, 128_777_352, 4096),
        [ModelArchitecture.Vgg13] = ("vgg13", 32, 128_950_848, 4096),
        [ModelArchitecture.Vgg16] = ("vgg16", 32, 134_260_544, 4096),
        [ModelArchitecture.Vgg16Bn] = ("vgg16_bn", 32, 134_277_453, 4096),
        [ModelArchitecture.Vgg19] = ("vgg19", 32, 139_570_240, 4096),
        [ModelArchitecture.MobileNetV2] = ("mobilenet_v2", 32, 2_258_036, 1280),
        [ModelArchitecture.GoogLeNet] = ("googlenet", 32, 5_614_521, 1024),
        [ModelArchitecture.AlexNet] = ("alexnet", 63, 57_003_840, 4096),
    };

    /// <summary>True for the architectures built from TorchSharp's TorchVision package (not <see cref="InceptionV3"/>, which is the library's own).</summary>
    public static bool IsTorchVision(ModelArchitecture architecture) => Table.ContainsKey(architecture);

    /// <summary>Every architecture a PyTorch state dict can be imported into, by torchvision's name.</summary>
    public static IReadOnlyDictionary<string, ModelArchitecture> ByTorchVisionName { get; } =
        Table.ToDictionary(kv => kv.Value.Name, kv => kv.Key).Append(new("inception_v3", ModelArchitecture.InceptionV3)).ToDictionary(kv => kv.Key, kv => kv.Value);

    /// <summary>torchvision's function name for <paramref name="architecture"/> ("resnet18", "vgg16_bn", "inception_v3").</summary>
    public static string TorchVisionName(ModelArchitecture architecture) =>
        architecture == ModelArchitecture.InceptionV3 ? "inception_v3"
        : Table.TryGetValue(architecture, out var e) ? e.Name
        : throw new ArgumentException($"{architecture} is not a torchvision architecture. Known: {string.Join(", ", ByTorchVisionName.Keys)}.", nameof(architecture));

    /// <summary>Smallest image side the architecture takes (75 for Inception v3, 63 for AlexNet, 32 for the others).</summary>
    public static int MinSide(ModelArchitecture architecture) =>
        architecture == ModelArchitecture.InceptionV3 ? 75 : Table.TryGetValue(architecture, out var e) ? e.MinSide : 1;

    /// <summary>
    /// State-dict entries a PyTorch file may hold that the rebuilt network does not have and that only training uses:
    /// GoogLeNet's auxiliary classifiers (aux1, aux2; torchvision keeps them unless built with aux_logits=False) and
    /// Inception v3's AuxLogits when the spec has none. They are skipped on import; every other name must match.
    /// </summary>
    public static IReadOnlyList<string> TrainingOnlyPrefixes(ModelSpec spec) => spec.Architecture switch
    {
        ModelArchitecture.GoogLeNet => new[] { "aux1.", "aux2." },
        ModelArchitecture.InceptionV3 when !spec.AuxLogits => new[] { "AuxLogits." },
        _ => Array.Empty<string>(),
    };

    internal static Module<Tensor, Tensor> Create(ModelSpec spec, int classes)
    {
        float dropout = (float)spec.Dropout;
        return spec.Architecture switch
        {
            ModelArchitecture.ResNet18 => torchvision.models.resnet18(num_classes: classes),
            ModelArchitecture.ResNet34 => torchvision.models.resnet34(num_classes: classes),
            ModelArchitecture.ResNet50 => torchvision.models.resnet50(num_classes: classes),
            ModelArchitecture.ResNet101 => torchvision.models.resnet101(num_classes: classes),
            ModelArchitecture.Vgg11 => torchvision.models.vgg11(num_classes: classes, dropout: dropout),
            ModelArchitecture.Vgg11Bn => torchvision.models.vgg11_bn(num_classes: classes, dropout: dropout),
            ModelArchitecture.Vgg13 => torchvision.models.vgg13(num_classes: classes, dropout: dropout),
            ModelArchitecture.Vgg16 => torchvision.models.vgg16(num_classes: classes, dropout: dropout),
            ModelArchitecture.Vgg16Bn => torchvision.models.vgg16_bn(num_classes: classes, dropout: dropout),
            ModelArchitecture.Vgg19 => torchvision.models.vgg19(num_classes: classes, dropout: dropout),
            ModelArchitecture.MobileNetV2 => torchvision.models.mobilenet_v2(num_classes: classes, dropout: spec.Dropout),
            ModelArchitecture.GoogLeNet => torchvision.models.googlenet(num_classes: classes, dropout: dropout),
            ModelArchitecture.AlexNet => torchvision.models.alexnet(num_classes: classes, dropout: dropout),
            _ => throw new ArgumentOutOfRangeException(nameof(spec), spec.Architecture, $"{spec.Architecture} is not a torchvision architecture."),
        };
    }

    /// <summary>Checks what a torchvision architecture can be: width 1, ReLU, 3 channels, square images from <see cref="MinSide"/> up.</summary>
    internal static void CheckSpec(ModelSpec spec)
    {
        if (!IsTorchVision(spec.Architecture)) return;
        if (spec.Rho != 1)
            throw new ArgumentOutOfRangeException(nameof(spec.Rho), spec.Rho, $"{spec.Architecture} is torchvision's network and has no width multiplier; rho must be 1, got {spec.Rho}.");
        if (spec.Activation is { } a && a != ActivationSpec.Relu)
            throw new ArgumentOutOfRangeException(nameof(spec.Activation), a, $"{spec.Architecture} is torchvision's network and uses ReLU; got {a}.");
        if (spec.Deeper || spec.AuxLogits)
            throw new ArgumentException($"Deeper and AuxLogits are Inception v3 options; {spec.Architecture} has neither.", nameof(spec));
    }

    /// <summary>Parameters and buffers of a torchvision architecture for <paramref name="classes"/> classes (exact up to 1%).</summary>
    internal static double ParameterCount(ModelArchitecture architecture, int classes)
    {
        var e = Table[architecture];
        return (e.Base + (e.ClassifierInputs + 1.0) * classes) * 1.01;
    }
}
