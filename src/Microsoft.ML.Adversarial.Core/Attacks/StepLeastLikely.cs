using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// "Step l.l.": a step towards the least-likely class, <c>X - eps * sign(grad_X J(X, y_LL))</c> with
/// <c>y_LL = argmin_y p(y|X)</c>. Uses no label, so it does not leak it; the paper's choice for adversarial training.
/// </summary>
public sealed class StepLeastLikely(AttackOptions? options = null) : OneStepAttack(AttackMethod.StepLL, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
        => -b.InputGradient(b.Clean, logits => AttackBatch.CrossEntropy(logits, AttackBatch.LeastLikely(logits))).sign();
}
