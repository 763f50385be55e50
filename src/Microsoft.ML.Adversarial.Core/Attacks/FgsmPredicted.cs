using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// "FGSM-pred": FGSM with the model's own prediction in place of the true label,
/// <c>X + eps * sign(grad_X J(X, argmax p(y|X)))</c>. Needs no labels, so it cannot leak them (section 4.2).
/// </summary>
public sealed class FgsmPredicted(AttackOptions? options = null) : OneStepAttack(AttackMethod.FgsmPred, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
        => b.InputGradient(b.Clean, logits => AttackBatch.CrossEntropy(logits, AttackBatch.Predicted(logits))).sign();
}
