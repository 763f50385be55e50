using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Baseline (appendix A): <c>X + eps * T</c>, T drawn per pixel from a normal with mean 0 and std 0.5, truncated to
/// [-1, 1] (so the perturbation has std 0.5 eps and stays within [-eps, eps]).
/// </summary>
public sealed class TruncatedNormalNoise(AttackOptions? options = null) : OneStepAttack("random-truncnormal", options ?? new AttackOptions())
{
    /// <inheritdoc/>
    public override bool IsRandomBaseline => true;

    /// <summary>Noise needs no gradient.</summary>
    public override bool NeedsGradients => false;

    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
    {
        // Rejection: redraw the values outside [-1, 1] (4.6% per round) until none remain.
        var t = b.Normal().Times(0.5);
        for (var outside = t.abs().Greater(1); outside.any().item<bool>(); outside = t.abs().Greater(1))
            t = where(outside, b.Normal().Times(0.5), t);
        return t;
    }
}
