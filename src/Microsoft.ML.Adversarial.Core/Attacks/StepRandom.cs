using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// "Step rnd.": a step towards a class drawn uniformly among those other than the true one,
/// <c>X - eps * sign(grad_X J(X, y_rnd))</c>.
/// </summary>
public sealed class StepRandom(AttackOptions? options = null) : OneStepAttack(AttackMethod.StepRnd, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    public override bool RequiresLabels => true;

    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
        => -b.InputGradient(b.Clean, logits => AttackBatch.CrossEntropy(logits, b.RandomOtherClass(logits.shape[1]))).sign();
}
