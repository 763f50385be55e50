using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial;

/// <summary>"Fast entropy": <c>X + eps * sign(grad_X H(p(.|X)))</c>, raising the entropy of the prediction; no label used.</summary>
public sealed class FastEntropy(AttackOptions? options = null) : OneStepAttack(AttackMethod.FastEntropy, options ?? new AttackOptions())
{
    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
        => b.InputGradient(b.Clean, logits =>
        {
            var logp = F.log_softmax(logits, 1);
            return -(logp.exp() * logp).sum();
        }).sign();
}
