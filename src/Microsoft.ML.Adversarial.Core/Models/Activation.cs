using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>The activations the paper compares (appendix D) and the transfer models use.</summary>
public enum ActivationKind
{
    /// <summary><c>max(0, x)</c>.</summary>
    Relu,
    /// <summary><c>min(max(0, x), 6)</c>.</summary>
    Relu6,
    /// <summary><c>relu(x) / (1 + beta relu(x)^2)</c>.</summary>
    ReluDecay,
    /// <summary><c>tanh(x)</c>.</summary>
    Tanh,
    /// <summary><c>x</c> for x &gt; 0, <c>exp(x) - 1</c> otherwise.</summary>
    Elu,
}

/// <summary>Activation choice plus the ReluDecay parameter.</summary>
public sealed record ActivationSpec(ActivationKind Kind = ActivationKind.Relu, double Beta = 0.01)
{
    /// <summary>Plain ReLU, the default.</summary>
    public static ActivationSpec Relu { get; } = new();

    /// <summary>A new activation module of this kind.</summary>
    public Module<Tensor, Tensor> Create() => Kind switch
    {
        ActivationKind.Relu => nn.ReLU(),
        ActivationKind.Relu6 => nn.ReLU6(),
        ActivationKind.ReluDecay => new ReluDecay(Beta),
        ActivationKind.Tanh => nn.Tanh(),
        ActivationKind.Elu => nn.ELU(),
        _ => throw new ArgumentOutOfRangeException(nameof(Kind), Kind, "Unknown activation."),
    };

    /// <summary>Parses "relu", "relu6", "reludecay" (or "reludecay:0.1"), "tanh", "elu".</summary>
    public static ActivationSpec Parse(string text)
    {
        var parts = text.Trim().ToLowerInvariant().Split(':', 2);
        var kind = parts[0] switch
        {
            "relu" => ActivationKind.Relu,
            "relu6" => ActivationKind.Relu6,
            "reludecay" or "relu-decay" => ActivationKind.ReluDecay,
            "tanh" => ActivationKind.Tanh,
            "elu" => ActivationKind.Elu,
            _ => throw new ArgumentException($"Unknown activation '{text}'. Known: relu, relu6, reludecay[:beta], tanh, elu."),
        };
        double beta = 0.01;
        if (parts.Length == 2 && (!double.TryParse(parts[1], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out beta) || beta < 0))
            throw new ArgumentException($"ReluDecay beta must be a non-negative number; got '{parts[1]}'.");
        return new ActivationSpec(kind, beta);
    }

    /// <summary>The name the CLI and model files use: "relu", "relu6", "tanh", "elu" or "reludecay:BETA".</summary>
    public override string ToString() => Kind == ActivationKind.ReluDecay ? string.Create(System.Globalization.CultureInfo.InvariantCulture, $"reludecay:{Beta}") : Kind.ToString().ToLowerInvariant();
}

/// <summary>ReluDecay (appendix D): <c>relu(x) / (1 + beta relu(x)^2)</c>, bounded and decaying for large inputs.</summary>
public sealed class ReluDecay : Module<Tensor, Tensor>
{
    /// <summary>Creates the activation.</summary>
    /// <param name="beta">The decay beta of <c>relu(x) / (1 + beta relu(x)^2)</c>.</param>
    public ReluDecay(double beta) : base(nameof(ReluDecay))
    {
        if (!(beta >= 0)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be >= 0.");
        Beta = beta;
    }

    /// <summary>The decay beta.</summary>
    public double Beta { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        var r = functional.relu(x);
        return r / (r.Times(Beta) * r).Plus(1); // held Scalars: see HeldScalars
    }
}
