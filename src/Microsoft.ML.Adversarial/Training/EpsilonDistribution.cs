using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training;

/// <summary>How adversarial training draws each example's epsilon (pixel units).</summary>
public abstract record EpsilonDistribution
{
    /// <summary>The paper's choice: N(0, 8) truncated to [0, 16], drawn independently per example.</summary>
    public static EpsilonDistribution Paper { get; } = new TruncatedNormalEpsilon(8, 16);

    public static EpsilonDistribution Fixed(double epsilon) => new FixedEpsilon(epsilon);

    /// <summary>Epsilons for <paramref name="count"/> examples, as a float32 tensor [count].</summary>
    public abstract Tensor Sample(long count, Generator? generator, Device device);

    public abstract void Validate();
}

/// <summary>
/// |N(0, std)| restricted to [0, max]: a normal with mean 0 truncated to [-max, max], folded to non-negative
/// values (TensorFlow's <c>abs(truncated_normal(stddev=8))</c> with max = 2 std = 16).
/// </summary>
public sealed record TruncatedNormalEpsilon(double Std, double Max) : EpsilonDistribution
{
    public override Tensor Sample(long count, Generator? generator, Device device)
    {
        var e = (randn(count, dtype: ScalarType.Float32, generator: generator) * Std).abs();
        for (var outside = e > Max; outside.any().item<bool>(); outside = e > Max)
            e = where(outside, (randn(count, dtype: ScalarType.Float32, generator: generator) * Std).abs(), e);
        return e.to(device);
    }

    public override void Validate()
    {
        if (!(Std > 0) || !double.IsFinite(Std)) throw new ArgumentOutOfRangeException(nameof(Std), Std, "The epsilon distribution's std must be positive.");
        if (!(Max > 0) || Max > 255) throw new ArgumentOutOfRangeException(nameof(Max), Max, $"The epsilon range [0, {Max}] is empty or beyond 255 pixel values.");
    }

    public override string ToString() => $"|N(0, {Std})| truncated to [0, {Max}]";
}

/// <summary>The same epsilon for every example (the paper notes this makes models robust to that epsilon only).</summary>
public sealed record FixedEpsilon(double Epsilon) : EpsilonDistribution
{
    public override Tensor Sample(long count, Generator? generator, Device device) => full(count, Epsilon, dtype: ScalarType.Float32, device: device);

    public override void Validate()
    {
        if (!(Epsilon >= 0) || Epsilon > 255) throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must lie in [0, 255] pixel values.");
    }

    public override string ToString() => $"fixed {Epsilon}";
}

/// <summary>Uniform on [Min, Max].</summary>
public sealed record UniformEpsilon(double Min, double Max) : EpsilonDistribution
{
    public override Tensor Sample(long count, Generator? generator, Device device)
        => (rand(count, dtype: ScalarType.Float32, generator: generator) * (Max - Min) + Min).to(device);

    public override void Validate()
    {
        if (!(Min >= 0) || !(Max >= Min) || Max > 255)
            throw new ArgumentOutOfRangeException(nameof(Max), $"The epsilon range [{Min}, {Max}] is inverted or outside [0, 255].");
    }

    public override string ToString() => $"uniform [{Min}, {Max}]";
}
