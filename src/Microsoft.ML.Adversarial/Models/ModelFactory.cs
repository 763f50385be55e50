using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>The networks the library can build by name.</summary>
public enum ModelArchitecture
{
    /// <summary><see cref="Models.SmallCnn"/>: two convolutions and two dense layers, for small grey or colour images.</summary>
    SmallCnn,
}

/// <summary>What to build: architecture, width multiplier rho, activation and dropout.</summary>
public sealed record ModelSpec(ModelArchitecture Architecture = ModelArchitecture.SmallCnn, double Rho = 1, ActivationSpec? Activation = null, double Dropout = 0)
{
    /// <summary>A new, randomly initialised network for images of <paramref name="shape"/> and <paramref name="classes"/> classes.</summary>
    public Module<Tensor, Tensor> Create(int classes, (int Channels, int Height, int Width) shape) => Architecture switch
    {
        ModelArchitecture.SmallCnn when shape.Height == shape.Width =>
            new SmallCnn(classes, Rho, Activation, Dropout, inChannels: shape.Channels, imageSide: shape.Height),
        ModelArchitecture.SmallCnn => throw new ArgumentException($"SmallCnn needs square images; got {shape.Height}x{shape.Width}. Resize them (ResizeImages) first."),
        _ => throw new ArgumentOutOfRangeException(nameof(Architecture), Architecture, "Unknown architecture."),
    };

    public override string ToString() => $"{Architecture} (rho {Rho}, {Activation ?? ActivationSpec.Relu}{(Dropout > 0 ? $", dropout {Dropout}" : "")})";
}
