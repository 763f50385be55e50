using System.Globalization;
using System.Reflection;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>
/// <c>--method-option METHOD.SETTING=VALUE</c> (repeatable): a budget or setting of one method, e.g.
/// <c>square.queries=1000</c>, <c>apgd-ce.iterations=50</c>, <c>autoattack.square-queries=500</c>. The settings are the
/// properties of the method's options class (<see cref="AttackInfo.OptionsType"/>) beyond the shared ones (epsilon,
/// range, seed come from the command), spelled in kebab case; so every method, new ones included, gets its budgets.
/// </summary>
internal static class MethodSettings
{
    public const string OptionName = "--method-option";

    /// <summary>The settings a method takes, by kebab-case name.</summary>
    public static IReadOnlyDictionary<string, PropertyInfo> For(string method)
    {
        var type = AttackRegistry.Describe(method).OptionsType;
        return type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Where(p => p.CanRead && p.CanWrite && p.DeclaringType != typeof(AttackOptions))
            .ToDictionary(p => Kebab(p.Name), StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Parses every <c>--method-option</c> value into options per method (one entry per method, settings accumulated).</summary>
    public static Dictionary<string, AttackOptions> Parse(IEnumerable<string> values, IReadOnlyList<string> methods)
    {
        var result = new Dictionary<string, AttackOptions>(StringComparer.OrdinalIgnoreCase);
        foreach (string text in values)
        {
            string Error(string why) => $"{OptionName} '{text}': {why}";
            int eq = text.IndexOf('='), dot = eq < 0 ? -1 : text.LastIndexOf('.', eq);
            if (eq < 0 || dot <= 0)
                throw new CliException(Error("write METHOD.SETTING=VALUE, for example square.queries=1000 or apgd-ce.iterations=50."));
            string methodText = text[..dot].Trim(), setting = text[(dot + 1)..eq].Trim(), value = text[(eq + 1)..].Trim();
            string method = methods.FirstOrDefault(m => string.Equals(m, methodText, StringComparison.OrdinalIgnoreCase))
                ?? throw new CliException(Error($"method '{methodText}' is not among --methods ({string.Join(", ", methods)}); add it there."));
            var settings = For(method);
            if (settings.Count == 0)
                throw new CliException(Error($"method '{method}' has no settings of its own (its epsilon and seed come from --epsilons and --seed)."));
            if (!settings.TryGetValue(setting, out var property))
                throw new CliException(Error($"'{method}' has no setting '{setting}'. Its settings: {string.Join(", ", settings.Keys)}."));
            var options = result.TryGetValue(method, out var existing) ? existing : AttackRegistry.OptionsFor(method);
            object parsed = ParseValue(property, value, Error);
            property.SetValue(options, parsed);
            // A setting the method's name fixes (autoattack's version, apgd-ce's loss) would be silently replaced: refuse it.
            object? effective = property.GetValue(AttackRegistry.Create(method, options).Options);
            if (!Equals(effective, parsed))
                throw new CliException(Error($"method '{method}' always runs with {setting}={Kebab(effective?.ToString() ?? "")}; choose the method named for that setting instead (e.g. autoattack-quick, apgd-t, apgd-ce-l2)."));
            result[method] = options;
        }
        return result;
    }

    private static object ParseValue(PropertyInfo property, string value, Func<string, string> error)
    {
        var type = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
        string name = Kebab(property.Name);
        if (type == typeof(int))
        {
            int min = property.Name.EndsWith("Class", StringComparison.Ordinal) ? 0 : 1; // a class index starts at 0, budgets at 1
            return int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) && i >= min ? i
                : throw new CliException(error($"{name} takes a whole number >= {min}; '{value}' is not one."));
        }
        if (type == typeof(double))
            return InvariantNumbers.TryParse(value, out double d) && double.IsFinite(d) ? d
                : throw new CliException(error($"{name} takes a number; '{value}' is not one."));
        if (type == typeof(bool))
            return bool.TryParse(value, out bool b) ? b : throw new CliException(error($"{name} takes true or false; '{value}' is neither."));
        if (type.IsEnum)
        {
            var match = Enum.GetNames(type).FirstOrDefault(n => string.Equals(Kebab(n), value, StringComparison.OrdinalIgnoreCase) || string.Equals(n, value, StringComparison.OrdinalIgnoreCase));
            return match is not null ? Enum.Parse(type, match)
                : throw new CliException(error($"{name} takes one of {string.Join(", ", Enum.GetNames(type).Select(Kebab))}; '{value}' is none of them."));
        }
        throw new CliException(error($"{name} cannot be set from the command line."));
    }

    /// <summary>"SquareQueries" as "square-queries".</summary>
    public static string Kebab(string name)
        => string.Concat(name.Select((c, i) => char.IsUpper(c) && i > 0 && !char.IsUpper(name[i - 1]) ? "-" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
}
