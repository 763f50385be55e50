using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>Fast gradient sign method (Goodfellow et al., 2014): <c>X + eps * sign(grad_X J(X, y_true))</c>.</summary>
public sealed class Fgsm(AttackOptions? options = null) : OneStepAttack(AttackMethod.Fgsm, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    public override bool RequiresLabels => true;

    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
        => b.LossGradient(b.TrueLabels).sign();
}
