using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// "Fast grad. L2": <c>X + eps * g / ||g||_2</c> with <c>g = grad_X J(X, y_true)</c> in pixel units: the
/// perturbation's L2 norm is eps pixel values (before clipping).
/// </summary>
public sealed class FastGradL2(AttackOptions? options = null) : OneStepAttack(AttackMethod.FastGradL2, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    public override bool RequiresLabels => true;

    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
    {
        var g = b.InPixelUnits(b.LossGradient(b.TrueLabels));
        return g / b.PerExample(AttackBatch.L2Norm(g).AtLeast(1e-12));
    }
}
