using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// A small CNN for 1x28x28 images (Fashion-MNIST) at CPU scale:
/// conv 3x3 (32 rho) → act → maxpool 2 → conv 3x3 (64 rho) → act → maxpool 2 → fc (128 rho) → act → [dropout] → fc classes.
/// rho multiplies every layer's width, as the paper's capacity study does for Inception (section 4.3).
/// </summary>
public sealed class SmallCnn : Module<Tensor, Tensor>, IReplicable
{
    private readonly Func<Module<Tensor, Tensor>> _rebuild;

    private readonly Conv2d conv1;
    private readonly Conv2d conv2;
    private readonly Linear fc1;
    private readonly Linear fc2;
    private readonly Module<Tensor, Tensor> act1, act2, act3;
    private readonly Dropout dropout;

    /// <summary>Builds the network.</summary>
    /// <param name="classes">Number of classes.</param>
    /// <param name="rho">Width multiplier of every layer (the paper's rho).</param>
    /// <param name="activation">The activation; null is ReLU.</param>
    /// <param name="dropout">Dropout before the last layer.</param>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="imageSide">Input height and width.</param>
    public SmallCnn(int classes = 10, double rho = 1, ActivationSpec? activation = null, double dropout = 0, int inChannels = 1, int imageSide = 28)
        : base(nameof(SmallCnn))
    {
        _rebuild = () => new SmallCnn(classes, rho, activation, dropout, inChannels, imageSide);
        ModelChecks.Width(rho);
        ModelChecks.Classes(classes);
        if (imageSide < 4) throw new ArgumentOutOfRangeException(nameof(imageSide), imageSide, "SmallCnn needs images of at least 4x4.");
        if (!(dropout >= 0 && dropout < 1)) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "Dropout must lie in [0, 1).");
        activation ??= ActivationSpec.Relu;
        int c1 = ModelChecks.Scale(32, rho), c2 = ModelChecks.Scale(64, rho), h = ModelChecks.Scale(128, rho);
        int side = imageSide / 2 / 2;
        conv1 = Conv2d(inChannels, c1, 3, padding: 1);
        conv2 = Conv2d(c1, c2, 3, padding: 1);
        fc1 = Linear(c2 * side * side, h);
        fc2 = Linear(h, classes);
        act1 = activation.Create();
        act2 = activation.Create();
        act3 = activation.Create();
        this.dropout = Dropout(dropout);
        Classes = classes;
        Rho = rho;
        Activation = activation;
        RegisterComponents();
    }

    /// <summary>A new network with the same constructor arguments (a <see cref="ComputeModel"/>'s replica).</summary>
    public Module<Tensor, Tensor> CreateReplica() => _rebuild();

    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Width multiplier (the paper's rho).</summary>
    public double Rho { get; }
    /// <summary>The activation the layers use.</summary>
    public ActivationSpec Activation { get; }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        x = functional.max_pool2d(act1.call(conv1.call(x)), 2);
        x = functional.max_pool2d(act2.call(conv2.call(x)), 2);
        x = act3.call(fc1.call(x.flatten(1)));
        return fc2.call(dropout.call(x));
    }
}

internal static class ModelChecks
{
    /// <summary>Largest width multiplier accepted.</summary>
    public const double MaxRho = 16;

    public static void Width(double rho)
    {
        // Bounded above: rho 200 asks for a network of tens of gigabytes, which used to crash in native code.
        if (!double.IsFinite(rho) || rho <= 0 || rho > MaxRho)
            throw new ArgumentOutOfRangeException(nameof(rho), rho, $"The width multiplier rho must be a positive number no larger than {MaxRho} (the paper studies 0.5 to 2); got {rho}.");
    }

    public static void Classes(int classes)
    {
        if (classes < 2) throw new ArgumentOutOfRangeException(nameof(classes), classes, "A classifier needs at least 2 classes.");
    }

    /// <summary>A layer width times rho, rounded, at least 1.</summary>
    public static int Scale(int width, double rho) => Math.Max(1, (int)Math.Round(width * rho));
}
