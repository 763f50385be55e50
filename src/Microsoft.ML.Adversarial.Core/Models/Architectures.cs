using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// Everything the library knows about one network it builds by name: its names, how to build it, the images it takes,
/// how many parameters it has, and whether a model file can rebuild it. Every place that needs one of these facts
/// (<see cref="ModelSpec.Create"/>, <see cref="ModelSpec.ParseArchitecture"/>, <see cref="ModelDescription.Validate"/>,
/// <see cref="ModelDescription.EstimateParameterCount"/>, <see cref="TorchVisionModels"/>, the CLI's help) reads it
/// from here. Adding a network is one entry in <see cref="Architectures.All"/> (and its <see cref="ModelArchitecture"/> member).
/// </summary>
public sealed record ArchitectureDescriptor
{
    /// <summary>The architecture this describes.</summary>
    public required ModelArchitecture Architecture { get; init; }

    /// <summary>The name the CLI's <c>--arch</c> and <see cref="ModelSpec.ParseArchitecture"/> list it by ("smallcnn", "resnet18", "vgg16_bn").</summary>
    public required string Name { get; init; }

    /// <summary>Other names it is parsed from; like <see cref="Name"/>, compared without case, '-' and '_'.</summary>
    public IReadOnlyList<string> Aliases { get; init; } = Array.Empty<string>();

    /// <summary>
    /// torchvision's function name ("resnet18", "inception_v3") when the network has torchvision's parameter names, so
    /// that <c>torch.save(model.state_dict(), path)</c> from PyTorch imports by this name; null otherwise.
    /// </summary>
    public string? TorchVisionName { get; init; }

    /// <summary>True when TorchSharp's TorchVision package builds it (torchvision's width and ReLU, 3-channel images).</summary>
    public bool FromTorchVisionPackage { get; init; }

    /// <summary>Smallest image side it takes (it takes square images only, of any larger side).</summary>
    public int MinSide { get; init; } = 1;

    /// <summary>The only number of input channels it takes; null when it takes any.</summary>
    public int? Channels { get; init; }

    /// <summary>True when the library can build it from a <see cref="ModelSpec"/>, so a model file can hold it.</summary>
    public bool Rebuildable => Build is not null;

    /// <summary>Builds the network for a checked spec, class count and shape (null: the library cannot build it).</summary>
    internal Func<ModelSpec, int, (int Channels, int Height, int Width), Module<Tensor, Tensor>>? Build { get; init; }

    /// <summary>
    /// Parameters and buffers of the network (spec, classes, channels, side), from the numbers alone: nothing is
    /// allocated, so it is safe on any description. Never below the real count (a model file's weights are bounded by
    /// it), at most a few percent above (<c>ArchitectureCatalogTests</c> checks both on every architecture).
    /// </summary>
    internal Func<ModelSpec, int, int, int, double>? CountParameters { get; init; }

    /// <summary>Refuses spec options the architecture cannot honour (e.g. a width multiplier for torchvision's networks).</summary>
    internal Action<ModelSpec>? CheckSpec { get; init; }

    /// <summary>Whether it has torchvision's <c>transform_input</c> (<see cref="ModelSpec.TransformInput"/>).</summary>
    internal bool TakesTransformInput { get; init; }

    /// <summary>State-dict prefixes of training-only heads a PyTorch file may hold and the built network may not.</summary>
    internal Func<ModelSpec, IReadOnlyList<string>>? TrainingOnlyPrefixes { get; init; }

    /// <summary>
    /// The network for <paramref name="spec"/>, <paramref name="classes"/> classes and images of <paramref name="shape"/>,
    /// after checking the shape against <see cref="Channels"/> and <see cref="MinSide"/>.
    /// </summary>
    internal Module<Tensor, Tensor> Create(ModelSpec spec, int classes, (int Channels, int Height, int Width) shape)
    {
        if (Build is null) throw new NotSupportedException(Architectures.CustomCannotBeRebuilt);
        if (Channels is { } channels && shape.Channels != channels)
            throw new ArgumentException($"{Architecture} takes {channels}-channel images; got {shape.Channels}. Convert grey images to RGB (ConvertToGrayscale off, ExtractPixels with colors RGB).");
        if (shape.Height < MinSide)
            throw new ArgumentException($"{Architecture} needs images of at least {MinSide}x{MinSide}; got {shape.Height}x{shape.Width}. Resize them (ResizeImages) first.");
        return Build(spec, classes, shape);
    }
}

/// <summary>
/// The networks the library builds by name, one <see cref="ArchitectureDescriptor"/> each: the one place to add one.
/// </summary>
public static class Architectures
{
    /// <summary>Every architecture, <see cref="ModelArchitecture.Custom"/> (not rebuildable) included, in the enum's order.</summary>
    public static IReadOnlyList<ArchitectureDescriptor> All { get; } = new[]
    {
        new ArchitectureDescriptor
        {
            Architecture = ModelArchitecture.SmallCnn, Name = "smallcnn", Aliases = new[] { "cnn" }, MinSide = 4,
            Build = (s, classes, shape) => new SmallCnn(classes, s.Rho, s.Activation, s.Dropout, inChannels: shape.Channels, imageSide: shape.Height),
            CountParameters = (s, k, c, side) =>
            {
                double S(int width) => Width(width, s.Rho);
                double pooled = Math.Floor(side / 4.0);
                return (c * 9.0 + 1) * S(32) + (S(32) * 9 + 1) * S(64) + (S(64) * pooled * pooled + 1) * S(128) + (S(128) + 1) * k;
            },
        },
        new ArchitectureDescriptor
        {
            Architecture = ModelArchitecture.SmallResNet, Name = "smallresnet", Aliases = new[] { "resnet" },
            Build = (s, classes, shape) => new SmallResNet(classes, s.Rho, s.Activation, shape.Channels, s.BlocksPerStage),
            CountParameters = (s, k, c, _) =>
            {
                double w1 = Width(16, s.Rho), w2 = Width(32, s.Rho), w3 = Width(64, s.Rho);
                double blocks = Math.Min(s.BlocksPerStage, 1_000_000);
                static double Block(double i, double o) => i * 9 * o + o * 9 * o + 10 * o + (i != o ? i * o + 5 * o : 0);
                return c * 9.0 * w1 + 5 * w1 + Block(w1, w1) + Block(w1, w2) + Block(w2, w3)
                       + (blocks - 1) * (Block(w1, w1) + Block(w2, w2) + Block(w3, w3)) + (w3 + 1) * k;
            },
        },
        new ArchitectureDescriptor
        {
            Architecture = ModelArchitecture.InceptionV3, Name = "inceptionv3", Aliases = new[] { "inception" }, TorchVisionName = "inception_v3",
            MinSide = 75, TakesTransformInput = true,
            Build = (s, classes, shape) => s.TransformInput && shape.Channels != 3
                ? throw new ArgumentException($"TransformInput maps the 3 ImageNet-normalised channels; got {shape.Channels}-channel images. Turn TransformInput off or give RGB images.")
                : new InceptionV3(classes, s.Rho, s.Deeper, s.AuxLogits, s.Dropout, s.Activation, shape.Channels, s.TransformInput),
            CountParameters = (s, k, c, _) => InceptionV3.ParameterCount(k, s.Rho, s.Deeper, s.AuxLogits, c),
            TrainingOnlyPrefixes = s => s.AuxLogits ? Array.Empty<string>() : new[] { "AuxLogits." },
        },
        // torchvision's networks (TorchSharp's TorchVision): the parameter-and-buffer count without the classifier, and
        // the classifier's input width (measured on torchvision 0.14 with 10 classes; 1 % added as the margin).
        TorchVision(ModelArchitecture.ResNet18, "resnet18", 32, 11_186_132, 512, (k, _) => torchvision.models.resnet18(num_classes: k)),
        TorchVision(ModelArchitecture.ResNet34, "resnet34", 32, 21_301_732, 512, (k, _) => torchvision.models.resnet34(num_classes: k)),
        TorchVision(ModelArchitecture.ResNet50, "resnet50", 32, 23_561_205, 2048, (k, _) => torchvision.models.resnet50(num_classes: k)),
        TorchVision(ModelArchitecture.ResNet101, "resnet101", 32, 42_605_608, 2048, (k, _) => torchvision.models.resnet101(num_classes: k)),
        TorchVision(ModelArchitecture.Vgg11, "vgg11", 32, 128_766_336, 4096, (k, d) => torchvision.models.vgg11(num_classes: k, dropout: (float)d)),
        TorchVision(ModelArchitecture.Vgg11Bn, "vgg11_bn", 32, 128_777_352, 4096, (k, d) => torchvision.models.vgg11_bn(num_classes: k, dropout: (float)d)),
        TorchVision(ModelArchitecture.Vgg13, "vgg13", 32, 128_950_848, 4096, (k, d) => torchvision.models.vgg13(num_classes: k, dropout: (float)d)),
        TorchVision(ModelArchitecture.Vgg16, "vgg16", 32, 134_260_544, 4096, (k, d) => torchvision.models.vgg16(num_classes: k, dropout: (float)d)),
        TorchVision(ModelArchitecture.Vgg16Bn, "vgg16_bn", 32, 134_277_453, 4096, (k, d) => torchvision.models.vgg16_bn(num_classes: k, dropout: (float)d)),
        TorchVision(ModelArchitecture.Vgg19, "vgg19", 32, 139_570_240, 4096, (k, d) => torchvision.models.vgg19(num_classes: k, dropout: (float)d)),
        TorchVision(ModelArchitecture.MobileNetV2, "mobilenet_v2", 32, 2_258_036, 1280, (k, d) => torchvision.models.mobilenet_v2(num_classes: k, dropout: d)),
        // torchvision keeps GoogLeNet's auxiliary classifiers unless built with aux_logits=False; they are skipped on import.
        TorchVision(ModelArchitecture.GoogLeNet, "googlenet", 32, 5_614_521, 1024, (k, d) => torchvision.models.googlenet(num_classes: k, dropout: (float)d))
            with { TrainingOnlyPrefixes = _ => new[] { "aux1.", "aux2." } },
        TorchVision(ModelArchitecture.AlexNet, "alexnet", 63, 57_003_840, 4096, (k, d) => torchvision.models.alexnet(num_classes: k, dropout: (float)d)),
        new ArchitectureDescriptor { Architecture = ModelArchitecture.Custom, Name = "custom" },
    };

    private static readonly Dictionary<ModelArchitecture, ArchitectureDescriptor> ByArchitecture = All.ToDictionary(d => d.Architecture);

    /// <summary>The descriptor of <paramref name="architecture"/>.</summary>
    public static ArchitectureDescriptor Of(ModelArchitecture architecture) =>
        ByArchitecture.TryGetValue(architecture, out var d) ? d
        : throw new ArgumentOutOfRangeException(nameof(architecture), architecture, $"Unknown architecture {architecture}.");

    /// <summary>The architectures the library can build, in the enum's order.</summary>
    public static IEnumerable<ArchitectureDescriptor> Rebuildable => All.Where(d => d.Rebuildable);

    /// <summary>The names of every architecture the library builds, as a comma list ("smallcnn, smallresnet, inceptionv3, resnet18, ...").</summary>
    public static string NameList => string.Join(", ", Rebuildable.Select(d => d.Name));

    /// <summary>
    /// The architecture <paramref name="text"/> names: a <see cref="ArchitectureDescriptor.Name"/>, an alias or a
    /// torchvision name, compared without case, '-' and '_'.
    /// </summary>
    public static ArchitectureDescriptor Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string key = Key(text);
        return Rebuildable.FirstOrDefault(d => d.Aliases.Append(d.Name).Append(d.TorchVisionName ?? d.Name).Any(n => Key(n) == key))
               ?? throw new ArgumentException($"Unknown architecture '{text}'. Known: {NameList}.");
    }

    /// <summary>Why a <see cref="ModelArchitecture.Custom"/> network cannot be saved or rebuilt, and what to do.</summary>
    internal static string CustomCannotBeRebuilt =>
        "The network is a custom module the library cannot rebuild, so it cannot be written to a model file. If it is one of the " +
        $"architectures the library builds ({NameList}), " +
        "pass that architecture (a ModelSpec) when wrapping it; otherwise save its weights (ModelIO.SavePyTorch or module.save) and wrap it again after loading them.";

    private static string Key(string name) => name.Trim().ToLowerInvariant().Replace("-", "").Replace("_", "");

    /// <summary>A layer's width scaled by rho, as <c>ModelChecks.Scale</c> builds it, in doubles (safe for any rho).</summary>
    private static double Width(int width, double rho) => Math.Max(1, Math.Round(width * rho));

    private static ArchitectureDescriptor TorchVision(ModelArchitecture architecture, string name, int minSide, long baseCount, long classifierInputs,
        Func<int, double, Module<Tensor, Tensor>> build) => new()
    {
        Architecture = architecture, Name = name, TorchVisionName = name, FromTorchVisionPackage = true, MinSide = minSide, Channels = 3,
        Build = (s, classes, _) =>
        {
            TorchVisionModels.CheckSpec(s);
            return build(classes, s.Dropout);
        },
        CountParameters = (_, k, _, _) => (baseCount + (classifierInputs + 1.0) * k) * 1.01,
        CheckSpec = TorchVisionModels.CheckSpec,
    };
}
