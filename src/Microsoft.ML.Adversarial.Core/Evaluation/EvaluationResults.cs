using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>
/// Accuracy of one model on one kind of input: clean (<see cref="Method"/> "clean", epsilon 0) or adversarial, on
/// <see cref="Count"/> images. Each accuracy comes with its Wilson 95% score interval (<see cref="Wilson"/>, the one
/// interval everywhere): <see cref="Top1Low"/> to <see cref="Top1High"/>, which, unlike the normal approximation, does
/// not shrink to nothing at 0% or 100%.
/// </summary>
public sealed record AccuracyRow(string Model, string Method, double Epsilon, int Count, double Top1, double Top5, double AccuracyRatio)
{
    /// <summary>Lower bound of the Wilson 95% interval of <see cref="Top1"/> (NaN when <see cref="Count"/> is 0).</summary>
    public double Top1Low => Wilson.OfRate(Top1, Count).Low;
    /// <summary>Upper bound of the Wilson 95% interval of <see cref="Top1"/> (NaN when <see cref="Count"/> is 0).</summary>
    public double Top1High => Wilson.OfRate(Top1, Count).High;
    /// <summary>Lower bound of the Wilson 95% interval of <see cref="Top5"/> (NaN when <see cref="Count"/> is 0).</summary>
    public double Top5Low => Wilson.OfRate(Top5, Count).Low;
    /// <summary>Upper bound of the Wilson 95% interval of <see cref="Top5"/> (NaN when <see cref="Count"/> is 0).</summary>
    public double Top5High => Wilson.OfRate(Top5, Count).High;
}

/// <summary>A label-leaking check (section 4.2) for one label-using one-step method at one epsilon.</summary>
public sealed record LabelLeakRow(string Model, string Method, double Epsilon, double CleanTop1, double TrueLabelTop1, double PredictedLabelTop1)
{
    /// <summary>Adversarial accuracy above clean accuracy: the model has learned to exploit the true label in the perturbation.</summary>
    public bool AboveClean => TrueLabelTop1 > CleanTop1;

    /// <summary>Examples built from the true label are classified better than those built from the predicted label.</summary>
    public bool TrueLabelHelps => TrueLabelTop1 > PredictedLabelTop1;

    /// <summary>
    /// A gradient-masking check of the same evaluation failed: the label-using attack's figure then says nothing about
    /// leaking (a masked gradient makes the attack weak with any label), and the verdict says so.
    /// </summary>
    public bool MaskingSuspected { get; init; }

    /// <summary>The finding in words.</summary>
    public string Verdict => MaskingSuspected && (AboveClean || TrueLabelHelps)
        ? string.Create(CultureInfo.InvariantCulture, $"Inconclusive: {Method} at eps {Epsilon} gives {TrueLabelTop1:P1} with the true label and {PredictedLabelTop1:P1} with the predicted one (clean {CleanTop1:P1}), but a gradient-masking check failed (see the warnings): with masked gradients the attack is weak whatever the label, so this is not evidence of label leaking.")
        : AboveClean
        ? string.Create(CultureInfo.InvariantCulture, $"LABEL LEAKING: {Method} at eps {Epsilon} gives {TrueLabelTop1:P1}, above clean accuracy {CleanTop1:P1}; " +
          $"with the predicted label it gives {PredictedLabelTop1:P1}. Report the predicted-label variant or a method that does not use the label.")
        : TrueLabelHelps
            ? string.Create(CultureInfo.InvariantCulture, $"Possible leak: {Method} at eps {Epsilon} is weaker with the true label ({TrueLabelTop1:P1}) than with the predicted one ({PredictedLabelTop1:P1}).")
            : string.Create(CultureInfo.InvariantCulture, $"No leak: {Method} at eps {Epsilon} gives {TrueLabelTop1:P1} (true label) and {PredictedLabelTop1:P1} (predicted), clean {CleanTop1:P1}.");
}

/// <summary>What <see cref="RobustnessEvaluator"/> found for one model.</summary>
public sealed class RobustnessReport
{
    /// <summary>The model's name, as given to the evaluator.</summary>
    public required string Model { get; init; }
    /// <summary>One row per method and epsilon, the clean row first.</summary>
    public required IReadOnlyList<AccuracyRow> Rows { get; init; }
    /// <summary>The label-leak checks (section 4.2): each label-using one-step method with the true and the predicted label.</summary>
    public required IReadOnlyList<LabelLeakRow> LabelLeaks { get; init; }
    /// <summary>Warnings such as an attack whose input gradient was zero (gradient masking, not robustness).</summary>
    public required IReadOnlyList<string> Warnings { get; init; }

    /// <summary>Images the model scored during the evaluation when it is a black box (<see cref="ScoreFunctionModel"/>); null for a white-box model.</summary>
    public long? BlackBoxQueries { get; set; }

    /// <summary>Accuracy on the clean images.</summary>
    public AccuracyRow Clean => Rows.First(r => r.Method == "clean");

    /// <summary>The row of a method at an epsilon; throws, listing what was evaluated, when there is none.</summary>
    /// <param name="method">Registry name, e.g. "fgsm".</param>
    /// <param name="epsilon">Epsilon in pixel units.</param>
    public AccuracyRow Get(string method, double epsilon) =>
        Rows.FirstOrDefault(r => r.Method == method && r.Epsilon == epsilon)
        ?? throw new KeyNotFoundException($"No result for method '{method}' at eps {epsilon}. Evaluated: {string.Join(", ", Rows.Select(r => $"{r.Method}@{r.Epsilon}"))}.");

    /// <summary>True when any label-using method scored above clean accuracy and no gradient-masking check failed.</summary>
    public bool LabelLeakingDetected => LabelLeaks.Any(l => l.AboveClean && !l.MaskingSuspected);

    /// <summary>The gradient-masking checks the evaluation could make (<see cref="RobustnessOptions.MaskingChecks"/>), passed and failed.</summary>
    public IReadOnlyList<MaskingCheck> MaskingChecks { get; init; } = Array.Empty<MaskingCheck>();

    /// <summary>True when a gradient-masking check failed: the gradient attacks' figures overstate robustness.</summary>
    public bool GradientMaskingSuspected => MaskingChecks.Any(c => c.Failed);

    /// <summary>The whole report as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ResultFiles.Json);

    /// <summary>The accuracy rows as CSV, one line per row.</summary>
    public string ToCsv() => ResultFiles.Csv(Rows);

    /// <summary>A plain-text table: method, eps, top-1 +- CI, top-5 +- CI, ratio to clean.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        sb.AppendLine($"{Model}");
        sb.AppendLine($"{"method",-14}{"eps",6}{"n",7}{"top-1 % [" + Wilson.Name + "]",26}{"top-5 % [" + Wilson.Name + "]",26}{"adv/clean",11}");
        foreach (var r in Rows)
            sb.AppendLine(CultureInfo.InvariantCulture, $"{r.Method,-14}{(r.Method == "clean" ? "-" : r.Epsilon.ToString(CultureInfo.InvariantCulture)),6}{r.Count,7}" +
                $"{Wilson.Format(r.Top1, r.Count),26}{Wilson.Format(r.Top5, r.Count),26}{r.AccuracyRatio,11:F3}");
        foreach (var l in LabelLeaks.Where(l => l.AboveClean || l.TrueLabelHelps)) sb.AppendLine(l.Verdict);
        if (BlackBoxQueries is { } queries) sb.AppendLine(CultureInfo.InvariantCulture, $"Black-box model: {queries:N0} images scored (queries).");
        foreach (var w in Warnings) sb.AppendLine("WARNING: " + w);
        return sb.ToString();
    }
}

/// <summary>Transfer of adversarial examples from one source model to one target (Tables 4 and 6).</summary>
/// <remarks>
/// Rates come with their Wilson 95% intervals (<see cref="Wilson"/>): the transfer rate over the <see cref="SourceFooled"/>
/// examples that fooled the source, the error rate over all <see cref="Count"/>.
/// </remarks>
public sealed record TransferRow(string Source, string Target, string Method, double Epsilon, int Count, double TargetTop1, double TargetTop5,
    int SourceFooled, double TransferRate, double ErrorRate)
{
    /// <summary>Lower bound of the Wilson 95% interval of <see cref="TransferRate"/> (n = <see cref="SourceFooled"/>; NaN when 0).</summary>
    public double TransferRateLow => Wilson.OfRate(TransferRate, SourceFooled).Low;
    /// <summary>Upper bound of the Wilson 95% interval of <see cref="TransferRate"/> (n = <see cref="SourceFooled"/>; NaN when 0).</summary>
    public double TransferRateHigh => Wilson.OfRate(TransferRate, SourceFooled).High;
    /// <summary>Lower bound of the Wilson 95% interval of <see cref="ErrorRate"/> (n = <see cref="Count"/>; NaN when 0).</summary>
    public double ErrorRateLow => Wilson.OfRate(ErrorRate, Count).Low;
    /// <summary>Upper bound of the Wilson 95% interval of <see cref="ErrorRate"/> (n = <see cref="Count"/>; NaN when 0).</summary>
    public double ErrorRateHigh => Wilson.OfRate(ErrorRate, Count).High;
}

/// <summary>What <see cref="TransferEvaluator"/> found: one row per source, target, method and epsilon.</summary>
public sealed class TransferReport
{
    /// <summary>One row per source, target, method and epsilon.</summary>
    public required IReadOnlyList<TransferRow> Rows { get; init; }

    /// <summary>The row for one source, target, method and epsilon.</summary>
    /// <param name="source">Source model name.</param>
    /// <param name="target">Target model name.</param>
    /// <param name="method">Registry name, e.g. "fgsm".</param>
    /// <param name="epsilon">Epsilon in pixel units.</param>
    public TransferRow Get(string source, string target, string method, double epsilon) =>
        Rows.First(r => r.Source == source && r.Target == target && r.Method == method && r.Epsilon == epsilon);

    /// <summary>The whole report as JSON.</summary>
    public string ToJson() => JsonSerializer.Serialize(this, ResultFiles.Json);
    /// <summary>The rows as CSV, one line per row.</summary>
    public string ToCsv() => ResultFiles.Csv(Rows);

    /// <summary>Source-by-target matrices of transfer rate and error rate, one per method and epsilon.</summary>
    public override string ToString()
    {
        var sb = new StringBuilder();
        var sources = Rows.Select(r => r.Source).Distinct().ToList();
        var targets = Rows.Select(r => r.Target).Distinct().ToList();
        foreach (var g in Rows.GroupBy(r => (r.Method, r.Epsilon)))
        {
            foreach (var (title, pick) in new (string, Func<TransferRow, double>)[] { ("transfer rate", r => r.TransferRate), ("error rate", r => r.ErrorRate) })
            {
                sb.AppendLine($"{g.Key.Method}, eps {g.Key.Epsilon.ToString(CultureInfo.InvariantCulture)}: {title} (rows: source, columns: target)");
                sb.AppendLine($"{"",-12}" + string.Concat(targets.Select(t => $"{t,10}")));
                foreach (var s in sources)
                    sb.AppendLine($"{s,-12}" + string.Concat(targets.Select(t => g.FirstOrDefault(r => r.Source == s && r.Target == t) is { } r ? string.Create(CultureInfo.InvariantCulture, $"{pick(r) * 100,9:F1}%") : $"{"-",10}")));
            }
        }
        return sb.ToString();
    }
}

internal static class ResultFiles
{
    public static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>CSV with a header from the record's properties, invariant culture.</summary>
    public static string Csv<T>(IEnumerable<T> rows)
    {
        var props = typeof(T).GetProperties().Where(p => p.PropertyType.IsPrimitive || p.PropertyType == typeof(string) || p.PropertyType == typeof(double)).ToArray();
        var sb = new StringBuilder();
        sb.AppendLine(string.Join(",", props.Select(p => p.Name)));
        foreach (var row in rows)
            sb.AppendLine(string.Join(",", props.Select(p => Field(p.GetValue(row)))));
        return sb.ToString();
    }

    private static string Field(object? v) => v switch
    {
        null => "",
        string s when s.Contains(',') || s.Contains('"') => "\"" + s.Replace("\"", "\"\"") + "\"",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => v.ToString() ?? "",
    };
}
