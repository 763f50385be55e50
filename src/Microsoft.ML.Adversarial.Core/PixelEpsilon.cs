using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// The one rule for epsilon values everywhere (attacks, evaluators, training distributions, ML.NET options, the CLI):
/// a perturbation size in pixel units of [0, 255], whatever range the model takes, finite and in [0, 255].
/// </summary>
public static class PixelEpsilon
{
    /// <summary>The largest epsilon: the whole pixel range.</summary>
    public const double Max = 255;

    /// <summary>Why <paramref name="epsilon"/> is not a valid pixel epsilon, or null when it is.</summary>
    public static string? Problem(double epsilon)
    {
        if (!double.IsFinite(epsilon) || epsilon < 0)
            return $"epsilon must be finite and >= 0 (pixel units of [0, 255]); got {epsilon}.";
        if (epsilon > Max)
            return $"epsilon is in pixel units of [0, 255]; {epsilon} exceeds 255 (for a model on [0, 1], eps 16 means 16/255 of the range: pass 16, not 16/255 * 255 twice).";
        return null;
    }

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming <paramref name="name"/> when <paramref name="epsilon"/> is invalid.</summary>
    public static void Check(double epsilon, string name)
    {
        if (Problem(epsilon) is { } problem)
            throw new ArgumentOutOfRangeException(name, epsilon, $"{name}: {problem}");
    }

    /// <summary>Checks every value of <paramref name="epsilons"/>.</summary>
    public static void CheckAll(IEnumerable<double> epsilons, string name)
    {
        ArgumentNullException.ThrowIfNull(epsilons, name);
        foreach (double e in epsilons) Check(e, name);
    }

    /// <summary>Checks a per-example epsilon tensor [N] with one reduction on the device; names the first bad value.</summary>
    internal static void Check(Tensor epsilons, string name)
    {
        using var _ = NewDisposeScope();
        var bad = torch.logical_or(~torch.isfinite(epsilons), torch.logical_or(epsilons.Less(0), epsilons.Greater(Max))); // held Scalars (HeldScalars)
        if (bad.any().item<bool>())
            Check(epsilons[bad][0].item<float>(), name);
    }
}
