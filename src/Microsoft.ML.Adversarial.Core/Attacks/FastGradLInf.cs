using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// "Fast grad. L-inf": <c>X + eps * g / ||g||_inf</c> with <c>g = grad_X J(X, y_true)</c> in pixel units: the
/// largest change is eps and the others keep their gradient proportions (no sign).
/// </summary>
public sealed class FastGradLInf(AttackOptions? options = null) : OneStepAttack(AttackMethod.FastGradLInf, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    public override bool RequiresLabels => true;

    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
    {
        var g = b.InPixelUnits(b.LossGradient(b.TrueLabels));
        return g / b.PerExample(AttackBatch.LInfNorm(g).AtLeast(1e-12));
    }
}
