using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>Baseline (appendix A): <c>X + eps * sign(N)</c> with N standard normal noise; no gradient, no label.</summary>
public sealed class RandomSign(AttackOptions? options = null) : OneStepAttack(AttackMethod.RandomSign, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    public override bool IsRandomBaseline => true;

    /// <summary>Noise needs no gradient.</summary>
    public override bool NeedsGradients => false;

    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b) => b.Normal().sign();
}
