namespace Microsoft.ML.Adversarial;

/// <summary>Numeric precision of a network's forward and backward passes.</summary>
public enum ComputePrecision
{
    /// <summary>32-bit floats everywhere (the reference).</summary>
    Float32,
    /// <summary>
    /// bfloat16 convolutions and matrix products on a copy of the network (CPUs with AVX512_BF16 or AMX, and CUDA);
    /// inputs, losses, epsilon steps and the master weights stay 32-bit.
    /// </summary>
    BFloat16,
    /// <summary>16-bit floats on a copy of the network (CUDA; slow on most CPUs). Same rules as <see cref="BFloat16"/>.</summary>
    Float16,
}

/// <summary>
/// How a network runs in attacks, scoring and training: precision, memory layout and BatchNorm folding. The defaults
/// are the fast 32-bit path, checked at run time against the plain path on the caller's network, batch shape and CPU
/// before its results are used (<see cref="VerifyFastPath"/>: library kernels are wrong for some shapes on some CPUs);
/// <see cref="ComputePrecision.BFloat16"/> is opt-in and changes results within documented bounds.
/// Two options with the same settings are equal (a record), so prepared networks are shared between them.
/// </summary>
public sealed record ComputeOptions
{
    /// <summary>Precision of the network's passes; default <see cref="ComputePrecision.Float32"/>.</summary>
    public ComputePrecision Precision { get; init; } = ComputePrecision.Float32;

    /// <summary>
    /// Feed image batches (4-D, 3 or more channels) to the network in channels-last memory order, which lets libtorch use
    /// its faster convolution kernels on CPUs. Where those kernels are right only the order of float additions differs;
    /// on some CPUs some are not (oneDNN's channels-last 1x1 convolutions on an AVX-512 Zen 5), which
    /// <see cref="VerifyFastPath"/> catches at run time. Default true.
    /// </summary>
    public bool ChannelsLast { get; init; } = true;

    /// <summary>
    /// In evaluation-mode passes (attacks, scoring), fold each BatchNorm into the convolution before it on a copy of the
    /// network, so one kernel does the work of two. Mathematically the same function, gradients with respect to the
    /// input included. Applies to the library's networks that pair a convolution with a BatchNorm (Inception v3);
    /// others run unfolded. Default true.
    /// </summary>
    public bool FoldBatchNorm { get; init; } = true;

    /// <summary>
    /// Before a prepared network's first pass at a batch shape, run that batch through the fast path and through the
    /// plain path and compare logits and input gradients (and parameter gradients for training passes). On disagreement
    /// the convolutions that disagree run in the plain layout, or, if that does not cure it, the plain path runs; one
    /// warning line names the layer. The verdict is kept per architecture, shape, options and CPU for the process
    /// (<see cref="Models.FastPathCheck"/>). Default true; false trusts the kernels (no check, no fallback).
    /// </summary>
    public bool VerifyFastPath { get; init; } = true;

    /// <summary>True when these options run the network exactly as its own forward pass does (nothing to verify).</summary>
    public bool IsPlain => Precision == ComputePrecision.Float32 && !ChannelsLast && !FoldBatchNorm;

    /// <summary>The default: 32-bit, channels-last, BatchNorm folded.</summary>
    public static ComputeOptions Default { get; } = new();

    /// <summary>32-bit, contiguous layout, no folding: exactly the network's own forward pass (the reference for checks).</summary>
    public static ComputeOptions Plain { get; } = new() { ChannelsLast = false, FoldBatchNorm = false };

    /// <summary>The reduced-precision path: bfloat16 with the default layout and folding.</summary>
    public static ComputeOptions BFloat16 { get; } = new() { Precision = ComputePrecision.BFloat16 };

    /// <summary>Parses "fp32", "bf16" or "fp16" (also "float32", "bfloat16", "float16").</summary>
    public static ComputePrecision ParsePrecision(string text) => text.Trim().ToLowerInvariant() switch
    {
        "fp32" or "float32" or "float" => ComputePrecision.Float32,
        "bf16" or "bfloat16" => ComputePrecision.BFloat16,
        "fp16" or "float16" or "half" => ComputePrecision.Float16,
        _ => throw new ArgumentException($"Unknown precision '{text}'. Use fp32, bf16 or fp16.", nameof(text)),
    };

    /// <summary>The short name <see cref="ParsePrecision"/> reads: "fp32", "bf16" or "fp16".</summary>
    internal static string PrecisionName(ComputePrecision precision) =>
        precision switch { ComputePrecision.BFloat16 => "bf16", ComputePrecision.Float16 => "fp16", _ => "fp32" };

    /// <summary>E.g. <c>fp32, channels-last, BatchNorm folded</c>.</summary>
    public override string ToString() =>
        $"{PrecisionName(Precision)}" +
        $"{(ChannelsLast ? ", channels-last" : "")}{(FoldBatchNorm ? ", BatchNorm folded" : "")}{(VerifyFastPath || IsPlain ? "" : ", unverified")}";
}
