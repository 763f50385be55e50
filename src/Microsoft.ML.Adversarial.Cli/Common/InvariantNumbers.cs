using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>
/// The one rule for numbers in advml: culture-invariant everywhere, whatever the user's locale. System.CommandLine
/// reads doubles with the current culture (under de_DE "0.001" is 1, a thousands-grouped one) and even the invariant
/// culture takes "0,001" as 1 (a thousands separator), so every floating-point option gets this parser: digits with a
/// point as the decimal separator, anything else refused with the option's name. <see cref="Use"/> also makes the
/// process culture invariant, so what advml prints and writes (tables, reports, figure labels) is invariant too.
/// </summary>
internal static class InvariantNumbers
{
    /// <summary>What a number may look like: sign, digits, one decimal point, exponent; no grouping, no currency.</summary>
    private const NumberStyles Style = NumberStyles.Float;

    /// <summary>Invariant culture for this process (and threads it starts), and the invariant parser on every floating-point option of <paramref name="root"/>.</summary>
    public static void Use(System.CommandLine.Command root)
    {
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        Attach(root);
    }

    /// <summary>Parses an invariant number (as every option and file value is read); false for anything else, "0,001" included.</summary>
    public static bool TryParse(string text, out double value) =>
        double.TryParse(text, Style, CultureInfo.InvariantCulture, out value);

    private static void Attach(System.CommandLine.Command command)
    {
        foreach (var option in command.Options)
        {
            switch (option)
            {
                case Option<double> d: d.CustomParser = r => Parse(r, d.Name) ?? 0; break;
                case Option<double?> n: n.CustomParser = r => Parse(r, n.Name); break;
                case Option<float> f: f.CustomParser = r => (float)(Parse(r, f.Name) ?? 0); break;
                case Option<float?> g: g.CustomParser = r => Parse(r, g.Name) is { } v ? (float)v : null; break;
            }
        }
        foreach (var sub in command.Subcommands) Attach(sub);
    }

    private static double? Parse(ArgumentResult result, string option)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        if (TryParse(text, out double value)) return value;
        result.AddError($"{option} '{text}' is not a number as advml reads them: digits with a point as the decimal separator, e.g. 0.001 " +
                        "(never a comma, whatever the system's language).");
        return null;
    }
}
