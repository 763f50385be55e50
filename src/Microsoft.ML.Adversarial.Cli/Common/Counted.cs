using System.Globalization;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>Counted nouns: "1 epoch", "2 epochs".</summary>
internal static class Counted
{
    public static string Of(long n, string singular, string? plural = null) =>
        string.Create(CultureInfo.InvariantCulture, $"{n} {(n == 1 ? singular : plural ?? singular + "s")}");
}
