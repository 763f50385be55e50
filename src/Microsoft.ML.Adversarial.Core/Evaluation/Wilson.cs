using System.Globalization;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>
/// The one confidence interval for a proportion (accuracy, transfer rate, error rate) in the library and the CLI: in
/// <see cref="AccuracyRow"/> and <see cref="TransferRow"/> (so in every JSON and CSV file), the CLI's tables, reports and
/// figures. The Wilson score interval at 95%. Unlike the normal approximation p ± 1.96 sqrt(p (1 - p) / n), it does not collapse to "100.0 ± 0.0"
/// at the extremes (100 of 100 correct gives [96.3%, 100%]) and never leaves [0, 1].
/// </summary>
public static class Wilson
{
    /// <summary>What tables and legends call it.</summary>
    public const string Name = "Wilson 95%";

    /// <summary>The normal quantile for 95% (two-sided).</summary>
    public const double Z95 = 1.959963984540054;

    /// <summary>The interval for <paramref name="successes"/> of <paramref name="n"/>; (NaN, NaN) when n is 0.</summary>
    public static (double Low, double High) Interval(long successes, long n, double z = Z95)
    {
        if (n <= 0) return (double.NaN, double.NaN);
        if (successes < 0 || successes > n) throw new ArgumentOutOfRangeException(nameof(successes), $"{successes} successes of {n}: must lie in [0, n].");
        double p = (double)successes / n, z2 = z * z, denominator = 1 + z2 / n;
        double centre = (p + z2 / (2.0 * n)) / denominator;
        double half = z * Math.Sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / denominator;
        // At p = 0 or 1 one bound is exactly 0 or 1; rounding must not push it past.
        return (successes == 0 ? 0 : Math.Max(0, centre - half), successes == n ? 1 : Math.Min(1, centre + half));
    }

    /// <summary>The interval for a rate measured on <paramref name="n"/> examples (the count of successes is rate x n, rounded).</summary>
    public static (double Low, double High) OfRate(double rate, long n) =>
        double.IsFinite(rate) && n > 0 ? Interval((long)Math.Round(Math.Clamp(rate, 0, 1) * n), n) : (double.NaN, double.NaN);

    /// <summary>"78.4 [75.7, 80.9]": the rate and its interval in percent ("-" for no data).</summary>
    public static string Format(double rate, long n)
    {
        if (!double.IsFinite(rate) || n <= 0) return "-";
        var (low, high) = OfRate(rate, n);
        return string.Create(CultureInfo.InvariantCulture, $"{rate * 100:F1} [{low * 100:F1}, {high * 100:F1}]");
    }

    /// <summary>
    /// Whether <paramref name="a"/> is above <paramref name="b"/> beyond their combined uncertainty: the difference
    /// exceeds the root sum of squares of a's lower and b's upper Wilson half-widths.
    /// </summary>
    public static bool Above(double a, long na, double b, long nb)
    {
        if (!double.IsFinite(a) || !double.IsFinite(b) || na <= 0 || nb <= 0) return false;
        double lowA = a - OfRate(a, na).Low, highB = OfRate(b, nb).High - b;
        return a - b > Math.Sqrt(lowA * lowA + highB * highB);
    }
}
