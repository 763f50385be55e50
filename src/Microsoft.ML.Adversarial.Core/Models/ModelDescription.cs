using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>What a model file says about its network, so that loading can rebuild it.</summary>
public sealed record ModelDescription(ModelSpec Spec, int Classes, int Channels, int Height, int Width, IReadOnlyList<string>? ClassNames = null)
{
    /// <summary>
    /// The pixel range the network takes (null in files written before it was stored: those models were trained on
    /// [0, 1], see <see cref="InputRangeOrDefault"/>). Attacks use it to convert epsilon and to clip.
    /// </summary>
    public InputRange? InputRange { get; init; }

    /// <summary><see cref="InputRange"/>, or [0, 1] for files that do not say (every model before the field existed was trained on [0, 1]).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public InputRange InputRangeOrDefault => InputRange ?? Adversarial.InputRange.UnitInterval;

    /// <summary>Most classes a description may declare (ImageNet-21k has 21,841).</summary>
    public const int MaxClasses = 100_000;
    /// <summary>Most input channels a description may declare.</summary>
    public const int MaxChannels = 64;
    /// <summary>Largest image side a description may declare.</summary>
    public const int MaxSide = 4096;
    /// <summary>Most parameters a description may need (4 GB of float32 weights).</summary>
    public const long MaxParameters = 1_000_000_000;

    /// <summary>Builds the (untrained) network this description describes (after <see cref="Validate"/>).</summary>
    public Module<Tensor, Tensor> CreateModel()
    {
        Validate();
        return Spec.Create(Classes, (Channels, Height, Width));
    }

    /// <summary>
    /// Checks every number before anything is allocated: a damaged or hostile description must give an error, not a
    /// native crash or an attempt to allocate hundreds of gigabytes. The message names the field and its value.
    /// </summary>
    public void Validate()
    {
        if (Spec is null) throw new ArgumentNullException(nameof(Spec), "The description has no Spec (architecture, rho, activation).");
        if (!Enum.IsDefined(Spec.Architecture))
            throw new ArgumentOutOfRangeException(nameof(Spec.Architecture), Spec.Architecture, $"Unknown architecture {Spec.Architecture}.");
        var architecture = Architectures.Of(Spec.Architecture);
        if (!architecture.Rebuildable)
            throw new ArgumentException(ModelSpec.CustomCannotBeRebuilt, nameof(Spec));
        Spec.Validate();
        if (Classes < 2 || Classes > MaxClasses)
            throw new ArgumentOutOfRangeException(nameof(Classes), Classes, $"A classifier needs 2 to {MaxClasses} classes; the description says {Classes}.");
        if (ClassNames is not null && (ClassNames.Count != Classes || ClassNames.Any(n => n is null)))
            throw new ArgumentException($"ClassNames has {ClassNames.Count} names (or a null one) for {Classes} classes.", nameof(ClassNames));
        if (Channels < 1 || Channels > MaxChannels)
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, $"Channels must lie in 1..{MaxChannels}; the description says {Channels}.");
        if (architecture.Channels is { } channels && Channels != channels)
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, $"{Spec.Architecture} takes {channels}-channel images; the description says {Channels}.");
        int minSide = architecture.MinSide;
        foreach (var (name, side) in new[] { (nameof(Height), Height), (nameof(Width), Width) })
            if (side < minSide || side > MaxSide)
                throw new ArgumentOutOfRangeException(name, side, $"{Spec.Architecture} takes images of {minSide} to {MaxSide} pixels a side; the description says {name} {side}.");
        if (Height != Width)
            throw new ArgumentException($"{Spec.Architecture} needs square images; the description says {Height}x{Width}.", nameof(Width));
        long parameters = EstimateParameterCount();
        if (parameters > MaxParameters)
            throw new ArgumentOutOfRangeException(nameof(Spec), $"{Spec} for {Channels}x{Height}x{Width} images and {Classes} classes needs about " +
                $"{parameters:N0} parameters ({parameters * 4.0 / (1L << 30):F0} GiB), more than the {MaxParameters:N0} allowed. Use a smaller rho or smaller images.");
    }

    /// <summary>
    /// About how many parameters and buffers the network has (never fewer; exact for SmallCnn and Inception v3, at most
    /// a few percent above for the others), computed from the numbers alone so that it is safe on any description
    /// (<see cref="ArchitectureDescriptor"/>). A network the library cannot rebuild has no estimate.
    /// </summary>
    public long EstimateParameterCount()
    {
        var architecture = Architectures.Of(Spec.Architecture);
        var count = architecture.CountParameters ?? throw new NotSupportedException(ModelSpec.CustomCannotBeRebuilt);
        double n = count(Spec, Classes, Channels, Height);
        return n >= long.MaxValue ? long.MaxValue : (long)Math.Ceiling(n);
    }
}
