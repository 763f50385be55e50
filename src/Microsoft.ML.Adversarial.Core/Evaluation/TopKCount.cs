using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>How many of a batch a classifier gets right in its first and in its first k guesses; both evaluators count this way.</summary>
internal readonly record struct TopKCount(long Top1, long TopK, Tensor Top1Right)
{
    /// <summary>Counts for <paramref name="logits"/> [N, K] against <paramref name="labels"/> [N]; k is capped at the class count.</summary>
    public static TopKCount Of(Tensor logits, Tensor labels, int k)
    {
        var top = logits.topk((int)Math.Min(k, logits.shape[1]), 1).indexes;
        var top1Right = top[.., 0].eq(labels);
        return new TopKCount(top1Right.sum().item<long>(), top.eq(labels.unsqueeze(1)).any(1).sum().item<long>(), top1Right);
    }
}
