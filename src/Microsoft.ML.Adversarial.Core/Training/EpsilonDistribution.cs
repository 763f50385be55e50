using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training;

/// <summary>How adversarial training draws each example's epsilon (pixel units).</summary>
public abstract record EpsilonDistribution
{
    /// <summary>The paper's choice: N(0, 8) truncated to [0, 16], drawn independently per example.</summary>
    public static EpsilonDistribution Paper { get; } = new TruncatedNormalEpsilon(8, 16);

    /// <summary>The same epsilon for every example.</summary>
    /// <param name="epsilon">Epsilon in pixel units.</param>
    public static EpsilonDistribution Fixed(double epsilon) => new FixedEpsilon(epsilon);

    /// <summary>Parses "paper", "truncnormal:STD:MAX", "fixed:E" (or just "E") and "uniform:MIN:MAX" (pixel units).</summary>
    public static EpsilonDistribution Parse(string text)
    {
        var parts = text.Trim().ToLowerInvariant().Split(':');
        double Num(int i) => i < parts.Length && double.TryParse(parts[i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var v)
            ? v : throw new FormatException($"Epsilon distribution '{text}': expected a number in place {i + 1}. Forms: paper, fixed:16, uniform:0:16, truncnormal:8:16.");
        EpsilonDistribution d = parts[0] switch
        {
            "paper" when parts.Length == 1 => Paper,
            "fixed" when parts.Length == 2 => new FixedEpsilon(Num(1)),
            "uniform" when parts.Length == 3 => new UniformEpsilon(Num(1), Num(2)),
            "truncnormal" when parts.Length == 3 => new TruncatedNormalEpsilon(Num(1), Num(2)),
            _ when parts.Length == 1 && double.TryParse(parts[0], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var e) => new FixedEpsilon(e),
            _ => throw new FormatException($"Unknown epsilon distribution '{text}'. Forms: paper, fixed:16, uniform:0:16, truncnormal:8:16."),
        };
        d.Validate();
        return d;
    }

    /// <summary>Epsilons for <paramref name="count"/> examples, as a float32 tensor [count] on <paramref name="device"/>.</summary>
    /// <param name="count">Number of examples.</param>
    /// <param name="generator">Seeded generator on <paramref name="device"/>, or null for the global one.</param>
    /// <param name="device">Where the samples are drawn and returned (the generator must live there too).</param>
    public Tensor Sample(long count, Generator? generator, Device device)
    {
        var on = RandomDevice.For(generator, device, $"Epsilon distribution {this}");
        // Own scope: the temporaries stay referenced (not finalizable) while libtorch uses them, whatever the caller does.
        using var scope = NewDisposeScope();
        return Draw(count, generator, on).MoveToOuterDisposeScope();
    }

    /// <summary>The draw itself, on <paramref name="device"/> (already checked against the generator).</summary>
    protected abstract Tensor Draw(long count, Generator? generator, Device device);

    /// <summary>Throws, naming the parameter, when the distribution's parameters are out of range.</summary>
    public abstract void Validate();
}

/// <summary>
/// |N(0, std)| restricted to [0, max]: a normal with mean 0 truncated to [-max, max], folded to non-negative
/// values (TensorFlow's <c>abs(truncated_normal(stddev=8))</c> with max = 2 std = 16).
/// </summary>
public sealed record TruncatedNormalEpsilon(double Std, double Max) : EpsilonDistribution
{
    /// <inheritdoc/>
    protected override Tensor Draw(long count, Generator? generator, Device device)
    {
        var e = randn(count, dtype: ScalarType.Float32, device: device, generator: generator).Times(Std).abs();
        for (var outside = e.Greater(Max); outside.any().item<bool>(); outside = e.Greater(Max))
            e = where(outside, randn(count, dtype: ScalarType.Float32, device: device, generator: generator).Times(Std).abs(), e);
        return e;
    }

    /// <inheritdoc/>
    public override void Validate()
    {
        if (!(Std > 0) || !double.IsFinite(Std)) throw new ArgumentOutOfRangeException(nameof(Std), Std, "The epsilon distribution's std must be positive.");
        PixelEpsilon.Check(Max, nameof(Max));
        if (!(Max > 0)) throw new ArgumentOutOfRangeException(nameof(Max), Max, $"The epsilon range [0, {Max}] is empty.");
    }

    /// <summary>The distribution in words, e.g. <c>|N(0, 8)| truncated to [0, 16]</c>.</summary>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"|N(0, {Std})| truncated to [0, {Max}]"); // stored in checkpoint settings and compared
}

/// <summary>The same epsilon for every example (the paper notes this makes models robust to that epsilon only).</summary>
public sealed record FixedEpsilon(double Epsilon) : EpsilonDistribution
{
    /// <inheritdoc/>
    protected override Tensor Draw(long count, Generator? generator, Device device) => HeldScalars.Full(count, Epsilon, ScalarType.Float32, device);

    /// <inheritdoc/>
    public override void Validate()
    {
        PixelEpsilon.Check(Epsilon, nameof(Epsilon));
    }

    /// <summary>The distribution in words, e.g. <c>fixed 8</c>.</summary>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"fixed {Epsilon}"); // stored in checkpoint settings and compared
}

/// <summary>Uniform on [Min, Max].</summary>
public sealed record UniformEpsilon(double Min, double Max) : EpsilonDistribution
{
    /// <inheritdoc/>
    protected override Tensor Draw(long count, Generator? generator, Device device)
        => rand(count, dtype: ScalarType.Float32, device: device, generator: generator).Times(Max - Min).Plus(Min);

    /// <inheritdoc/>
    public override void Validate()
    {
        PixelEpsilon.Check(Min, nameof(Min));
        PixelEpsilon.Check(Max, nameof(Max));
        if (!(Max >= Min)) throw new ArgumentOutOfRangeException(nameof(Max), $"The epsilon range [{Min}, {Max}] is inverted.");
    }

    /// <summary>The distribution in words, e.g. <c>uniform [0, 16]</c>.</summary>
    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"uniform [{Min}, {Max}]"); // stored in checkpoint settings and compared
}
