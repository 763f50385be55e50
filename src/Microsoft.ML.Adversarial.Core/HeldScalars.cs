using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Tensor arithmetic with numbers whose native <see cref="Scalar"/> is guaranteed to outlive the libtorch call.
/// <para>
/// Why: TorchSharp 0.107 turns every number given to an operation into a finalizable <see cref="Scalar"/>
/// (<c>t * 2.0</c>, <c>t &gt; 0</c>, <c>full(n, e)</c>, and the hidden <c>alpha = 1</c> of <c>a + b</c> and <c>a - b</c>) and
/// passes only its raw handle to libtorch, without <c>GC.KeepAlive</c>. Once the handle is read nothing references the
/// Scalar, so a garbage collection started by another thread while libtorch runs (threads in native code do not stop
/// for it) lets the finalizer thread free the native Scalar that libtorch is about to read: "Expected false to be true
/// ... Scalar::toFloat" (issue 13), or, when the memory is reused first, a silently wrong value.
/// </para>
/// <para>
/// The rule for this library's hot paths (attacks, training, epsilon sampling, evaluation): no operator or call that
/// makes a temporary Scalar. Constants are process-lifetime statics (a rooted Scalar is never finalized); run-time
/// numbers are Scalars disposed after the call, which keeps them alive through it. Tensors are safe when a dispose
/// scope holds them (every hot path runs in one), and tensor-tensor <c>*</c> and <c>/</c> take no Scalar.
/// </para>
/// </summary>
internal static class HeldScalars
{
    /// <summary>The alpha of a plain add or subtract.</summary>
    internal static readonly Scalar One = 1.ToScalar();

    /// <summary>The fill value of a boolean mask's <c>index_fill_</c>.</summary>
    internal static readonly Scalar False = false.ToScalar();

    /// <summary><c>a + b</c> with a held alpha.</summary>
    public static Tensor Plus(this Tensor a, Tensor b) => a.add(b, One);

    /// <summary><c>a - b</c> (TorchSharp's tensor subtract passes no Scalar; here so the hot paths follow one rule).</summary>
    public static Tensor Minus(this Tensor a, Tensor b) => a.sub(b);

    public static Tensor Plus(this Tensor a, double value)
    {
        using var s = value.ToScalar(); // disposed after the call returns, so alive during it
        return a.add(s, One);
    }

    public static Tensor Minus(this Tensor a, double value) => a.Plus(-value);

    public static Tensor Times(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.mul(s);
    }

    public static Tensor DividedBy(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.div(s);
    }

    public static Tensor Pow(this Tensor a, double exponent)
    {
        using var s = exponent.ToScalar();
        return a.pow(s);
    }

    public static Tensor Greater(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.gt(s);
    }

    public static Tensor Less(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.lt(s);
    }

    public static Tensor EqualTo(this Tensor a, double value)
    {
        using var s = value.ToScalar();
        return a.eq(s);
    }

    public static Tensor AtLeast(this Tensor a, double min)
    {
        using var s = min.ToScalar();
        return a.clamp_min(s);
    }

    public static Tensor AtMost(this Tensor a, double max)
    {
        using var s = max.ToScalar();
        return a.clamp_max(s);
    }

    /// <summary><c>torch.full</c> with a held fill value.</summary>
    public static Tensor Full(long count, double value, ScalarType dtype, Device device)
    {
        using var s = value.ToScalar();
        return torch.full(new[] { count }, s, dtype: dtype, device: device);
    }
}
