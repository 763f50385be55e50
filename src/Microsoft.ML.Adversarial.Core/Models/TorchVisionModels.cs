namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// The torchvision architectures the library can rebuild by name (TorchSharp's TorchVision package, whose parameter
/// and buffer names are torchvision's, so <c>torch.save(model.state_dict(), path)</c> from PyTorch loads by name), plus
/// the library's own <see cref="InceptionV3"/> (torchvision's names too). All take 3-channel images; their adaptive
/// pooling makes them work at any side from <see cref="MinSide"/> up. The facts come from <see cref="Architectures"/>.
/// </summary>
public static class TorchVisionModels
{
    /// <summary>True for the architectures built from TorchSharp's TorchVision package (not <see cref="InceptionV3"/>, which is the library's own).</summary>
    public static bool IsTorchVision(ModelArchitecture architecture) =>
        Architectures.All.Any(d => d.Architecture == architecture && d.FromTorchVisionPackage);

    /// <summary>Every architecture a PyTorch state dict can be imported into, by torchvision's name.</summary>
    public static IReadOnlyDictionary<string, ModelArchitecture> ByTorchVisionName { get; } =
        Architectures.All.Where(d => d.TorchVisionName is not null).OrderBy(d => d.FromTorchVisionPackage ? 0 : 1)
            .ToDictionary(d => d.TorchVisionName!, d => d.Architecture);

    /// <summary>torchvision's function name for <paramref name="architecture"/> ("resnet18", "vgg16_bn", "inception_v3").</summary>
    public static string TorchVisionName(ModelArchitecture architecture) =>
        Architectures.All.FirstOrDefault(d => d.Architecture == architecture)?.TorchVisionName
        ?? throw new ArgumentException($"{architecture} is not a torchvision architecture. Known: {string.Join(", ", ByTorchVisionName.Keys)}.", nameof(architecture));

    /// <summary>Smallest image side the architecture takes (75 for Inception v3, 63 for AlexNet, 32 for the other torchvision networks, 4 for SmallCnn).</summary>
    public static int MinSide(ModelArchitecture architecture) =>
        Architectures.All.FirstOrDefault(d => d.Architecture == architecture)?.MinSide ?? 1;

    /// <summary>
    /// State-dict entries a PyTorch file may hold that the rebuilt network does not have and that only training uses:
    /// GoogLeNet's auxiliary classifiers (aux1, aux2; torchvision keeps them unless built with aux_logits=False) and
    /// Inception v3's AuxLogits when the spec has none. They are skipped on import; every other name must match.
    /// </summary>
    public static IReadOnlyList<string> TrainingOnlyPrefixes(ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return Architectures.All.FirstOrDefault(d => d.Architecture == spec.Architecture)?.TrainingOnlyPrefixes?.Invoke(spec) ?? Array.Empty<string>();
    }

    /// <summary>Checks what a torchvision architecture can be: width 1, ReLU, no Inception options.</summary>
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
}
