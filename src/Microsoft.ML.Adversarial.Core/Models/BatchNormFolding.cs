using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>A convolution followed by a BatchNorm that can run as one convolution in evaluation mode.</summary>
internal interface IBatchNormFoldable
{
    /// <summary>Sets this module's folded weight and bias from <paramref name="source"/> (the same module in the master, fp32).</summary>
    void Fold(IBatchNormFoldable source, ScalarType dtype);

    /// <summary>The convolution's weight and the BatchNorm of the master module, read by <see cref="Fold"/>.</summary>
    (Tensor ConvWeight, Tensor? ConvBias, TorchSharp.Modules.BatchNorm2d Norm) Parts { get; }
}

/// <summary>
/// BatchNorm folding for evaluation-mode passes: y = gamma (conv(x) - mean) / sqrt(var + eps) + beta is the convolution
/// with weight w * s and bias (b - mean) * s + beta, s = gamma / sqrt(var + eps), per output channel. Computed in fp32
/// (float64 for a float64 master) from the master's weights, then cast to the replica's precision.
/// </summary>
internal static class BatchNormFolding
{
    public static bool HasFoldable(Module model) => model.modules().Any(m => m is IBatchNormFoldable);

    /// <summary>Folds every pair of the master into the matching module (by name) of the replica.</summary>
    public static void Fold(Module master, Module replica, ScalarType dtype)
    {
        var sources = master.named_modules().Where(t => t.module is IBatchNormFoldable).ToDictionary(t => t.name, t => (IBatchNormFoldable)t.module);
        foreach (var (name, module) in replica.named_modules())
        {
            if (module is not IBatchNormFoldable target) continue;
            if (!sources.TryGetValue(name, out var source))
                throw new InvalidOperationException($"The master has no foldable module '{name}': the replica must have the master's architecture.");
            target.Fold(source, dtype);
        }
    }

    /// <summary>The folded (weight, bias) of a convolution and the BatchNorm after it, in fp32.</summary>
    public static (Tensor Weight, Tensor Bias) Folded(Tensor convWeight, Tensor? convBias, TorchSharp.Modules.BatchNorm2d norm)
    {
        using var noGrad = no_grad();
        // fp32, or the master's float64.
        var t = convWeight.dtype == ScalarType.Float64 ? ScalarType.Float64 : ScalarType.Float32;
        var mean = norm.running_mean ?? throw new InvalidOperationException("BatchNorm without running statistics cannot be folded.");
        var variance = norm.running_var!;
        var scale = variance.to(t).Plus(norm.eps).rsqrt();
        if (norm.weight is not null) scale = scale * norm.weight.to(t);
        var weight = convWeight.to(t) * scale.reshape(-1, 1, 1, 1);
        var shift = norm.bias is not null ? norm.bias.to(t) : zeros_like(scale);
        var bias = ((convBias?.to(t) ?? zeros_like(scale)).Minus(mean.to(t)) * scale).Plus(shift);
        return (weight, bias);
    }
}
