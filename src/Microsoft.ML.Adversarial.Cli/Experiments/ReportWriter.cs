using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Adversarial.Evaluation;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Experiments;

/// <summary>
/// A paper finding, our numbers beside the paper's, and the verdict: "yes" (our numbers show it), "no", or
/// "not enough data" (a model it is judged on is below <see cref="ReportWriter.MinCleanAccuracy"/>; <see cref="Note"/> says which).
/// </summary>
internal sealed record Finding(string Id, string Claim, string Paper, string Ours, string Verdict, string? Note = null)
{
    /// <summary>Whether this run reproduced the finding (verdict "yes").</summary>
    public bool Reproduced => Verdict == ReportWriter.Yes;
}

/// <summary>Writes report.md (tables laid out like the paper's), results.json and the figures.</summary>
internal static class ReportWriter
{
    private static string P(double v) => double.IsNaN(v) ? "-" : (v * 100).ToString("F1", CultureInfo.InvariantCulture) + "%";
    private static string E(double e) => e.ToString(CultureInfo.InvariantCulture);

    /// <summary>a is above b beyond their combined Wilson 95% intervals (<see cref="Wilson.Above"/>).</summary>
    private static bool Above(AccuracyRow a, AccuracyRow b) => Wilson.Above(a.Top1, a.Count, b.Top1, b.Count);

    public const string Yes = "yes", No = "no", NotEnoughData = "not enough data";

    /// <summary>
    /// The clean top-1 accuracy every model a finding is judged on must reach, or the verdict is "not enough data".
    /// 50% is five times chance on 10 classes and well below the paper's baselines (~78%): a model under it has not
    /// learnt the task, so the accuracy it loses or keeps under attack, and the ratios and differences the findings
    /// compare, are mostly noise around chance (the smoke profile's models are at 37-39%). The paper's claims are
    /// about trained models.
    /// </summary>
    public const double MinCleanAccuracy = 0.5;

    /// <summary>The verdict on a finding: <see cref="NotEnoughData"/> if a judged model is below <see cref="MinCleanAccuracy"/> (or has no clean accuracy), else yes/no.</summary>
    public static (string Verdict, string? Note) Verdict(bool shown, IEnumerable<(string Model, double CleanTop1)> judged)
    {
        var weak = judged.Where(m => !(m.CleanTop1 >= MinCleanAccuracy)).ToList();
        if (weak.Count > 0)
            return (NotEnoughData, $"clean accuracy below the {P(MinCleanAccuracy)} minimum: " + string.Join(", ", weak.Select(m => $"{m.Model} {P(m.CleanTop1)}")));
        return (shown ? Yes : No, null);
    }

    public static IReadOnlyList<Finding> Findings(StudyResults r)
    {
        var f = new List<Finding>();
        void Add(string id, string claim, string paper, string ours, bool shown, params string[] models)
        {
            var (verdict, note) = Verdict(shown, models.Select(m => (m, r.Row(m, "clean", 0).Top1)));
            f.Add(new Finding(id, claim, paper, ours, verdict, note));
        }
        var baseLL = r.Row("A", "step-ll", 16);
        var advLL = r.Row("adv-step-ll", "step-ll", 16);
        Add("T1-robust", "Step l.l. adversarial training raises top-1 accuracy on step l.l. examples (eps 16)",
            "29.5% -> 73.9%", $"{P(baseLL.Top1)} -> {P(advLL.Top1)}", Above(advLL, baseLL), "A", "adv-step-ll");

        var baseClean = r.Row("A", "clean", 0);
        var advClean = r.Row("adv-step-ll", "clean", 0);
        double drop = baseClean.Top1 - advClean.Top1;
        Add("T1-clean", "Adversarial training costs a little clean accuracy (under a few points)",
            "78.4% -> 77.6% (-0.8)", $"{P(baseClean.Top1)} -> {P(advClean.Top1)} ({(-drop * 100).ToString("+0.0;-0.0", CultureInfo.InvariantCulture)})", drop >= 0 && drop < 0.05, "A", "adv-step-ll");

        var advIterLL = r.Row("adv-step-ll", "iter-ll", 16);
        var baseIterLL = r.Row("A", "iter-ll", 16);
        Add("T2-iterative", "One-step adversarial training gives little robustness to iterative examples (iter. l.l., eps 16)",
            "baseline 0.7%, adv. trained 1.5% (clean 77.4%)", $"baseline {P(baseIterLL.Top1)}, adv. trained {P(advIterLL.Top1)} (clean {P(advClean.Top1)})",
            advIterLL.Top1 < 0.5 * advClean.Top1, "A", "adv-step-ll");

        var leakEps = Reproduction.Epsilons.Select(e => (e, row: r.Row("adv-fgsm", "fgsm", e))).ToList();
        var fgsmClean = r.Row("adv-fgsm", "clean", 0);
        var best = leakEps.MaxBy(x => x.row.Top1);
        var llAbove = Reproduction.Epsilons.Any(e => Above(r.Row("adv-step-ll", "step-ll", e), advClean));
        Add("T3-leak", "Label leaking: a model trained and evaluated with FGSM is more accurate on FGSM examples than on clean ones; with step l.l. it is not",
            "FGSM: clean 76.6%, eps 8 88.7%; step l.l.: clean 77.3%, eps 8 73.4%",
            $"FGSM: clean {P(fgsmClean.Top1)}, best eps {E(best.e)} {P(best.row.Top1)}; step l.l.: clean {P(advClean.Top1)}, eps 8 {P(r.Row("adv-step-ll", "step-ll", 8).Top1)}",
            Above(best.row, fgsmClean) && !llAbove, "adv-fgsm", "adv-step-ll");

        double Mean(string method) => r.Table4.Rows.Where(x => x.Method == method && x.Source != x.Target && !double.IsNaN(x.TransferRate)).Select(x => x.TransferRate).DefaultIfEmpty(double.NaN).Average();
        double tf = Mean("fgsm"), tb = Mean("iter-basic"), tl = Mean("iter-ll");
        Add("T4-transfer", "FGSM examples transfer best, iter. l.l. worst (mean off-diagonal transfer rate, eps 16)",
            "FGSM ~54%, basic iter. ~40%, iter. l.l. ~12%", $"FGSM {P(tf)}, basic iter. {P(tb)}, iter. l.l. {P(tl)}", tf > tb && tb > tl, "A", "B", "C", "D");

        var t5 = new[] { "adv-fgsm", "adv-step-ll", "adv-step-rnd", "adv-random-sign" }.ToDictionary(m => m, m => r.Row(m, "fgsm", 16));
        Add("T5-methods", "Training on step l.l. or step rnd. gives more robustness (FGSM eps 16) than training on random sign noise",
            "step l.l. 72.2%, step rnd. 72.5%, random sign 32.7%",
            $"step l.l. {P(t5["adv-step-ll"].Top1)}, step rnd. {P(t5["adv-step-rnd"].Top1)}, random sign {P(t5["adv-random-sign"].Top1)}",
            Above(t5["adv-step-ll"], t5["adv-random-sign"]) && Above(t5["adv-step-rnd"], t5["adv-random-sign"]), "adv-step-ll", "adv-step-rnd", "adv-random-sign");

        var ratios = new[] { "adv-rho0.5", "adv-step-ll", "adv-rho2" }.Select(m => r.Row(m, "step-ll", 16).AccuracyRatio).ToArray();
        Add("F1-capacity", "For adversarially trained models the adv/clean ratio (step l.l., eps 16) grows with rho",
            "grows with rho, approaching 1 at rho 2", string.Create(CultureInfo.InvariantCulture, $"rho 0.5: {ratios[0]:F3}, 1: {ratios[1]:F3}, 2: {ratios[2]:F3}"), ratios[0] <= ratios[1] && ratios[1] <= ratios[2], "adv-rho0.5", "adv-step-ll", "adv-rho2");

        var fig2 = Reproduction.Epsilons.Select(e => r.Figure2.Get("A", "B", "fgsm", e).TransferRate).ToArray();
        Add("F2-eps", "FGSM transfer rate (A to B) grows with epsilon", "grows from ~25% at eps 2 to ~56% at eps 16",
            string.Join(", ", Reproduction.Epsilons.Select((e, i) => $"eps {E(e)}: {P(fig2[i])}")), fig2[^1] > fig2[0], "A", "B");

        var acts = new[] { ("relu", "adv-step-ll"), ("relu6", "adv-relu6"), ("ReluDecay 0.01", "adv-reludecay"), ("tanh", "adv-tanh") };
        var actLL = acts.ToDictionary(a => a.Item1, a => r.Row(a.Item2, "step-ll", 16).Top1);
        Add("T7-activations", "Under step l.l. training, tanh is the least robust to step l.l. examples of relu, relu6, ReluDecay 0.01, tanh (eps 16)",
            "relu 74.5%, relu6 74.0%, ReluDecay0.01 73.6%, tanh 61.9%", string.Join(", ", acts.Select(a => $"{a.Item1} {P(actLL[a.Item1])}")),
            actLL["tanh"] <= actLL.Values.Min(), "adv-step-ll", "adv-relu6", "adv-reludecay", "adv-tanh");
        return f;
    }

    /// <summary>"2 of 8 findings reproduced (5 not enough data)".</summary>
    public static string Summary(IReadOnlyList<Finding> findings)
    {
        int weak = findings.Count(f => f.Verdict == NotEnoughData);
        return $"{findings.Count(f => f.Reproduced)} of {findings.Count} findings reproduced" + (weak > 0 ? $" ({weak} {NotEnoughData})" : "");
    }

    public static string Markdown(StudyResults r, IReadOnlyList<Finding> findings, IReadOnlyList<string> figures)
    {
        var sb = new StringBuilder();
        sb.AppendLine("# Adversarial Machine Learning at Scale, at CPU scale");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Written by `advml reproduce --profile {r.Profile.Name}` on {DateTime.UtcNow:yyyy-MM-dd}: Fashion-MNIST-sized data, {r.TrainCount} training images, " +
            $"{Counted.Of(r.Profile.Epochs, "epoch")}, Adam (lr 0.001), minibatch 32; adversarial training with k = 16 of 32, lambda 0.3, epsilon ~ |N(0, 8)| in [0, 16]. " +
            $"Test: {r.TestCount} images ({r.IterativeTestCount} for iterative methods). {Environment.ProcessorCount} CPU cores, {r.Elapsed.TotalMinutes:F1} minutes. " +
            $"Models are SmallCnn (rho 1, relu) unless stated; the paper used Inception v3 on ImageNet, so absolute numbers differ; the comparisons are what carry over.");
        sb.AppendLine();
        sb.AppendLine($"Accuracies are top-1 unless stated, in percent; [low, high] is the {Wilson.Name} score interval (honest at 0% and 100%, unlike " +
            "the normal approximation's ± 0.0). A difference counts only where it exceeds the two intervals combined. A finding judged on a model " +
            $"below {P(MinCleanAccuracy)} clean accuracy reads \"{NotEnoughData}\": such a model has not learnt the task, so its numbers cannot confirm or refute the paper.");
        sb.AppendLine();
        sb.AppendLine("## Findings");
        sb.AppendLine();
        sb.AppendLine("| finding | paper | ours | reproduced? |");
        sb.AppendLine("| --- | --- | --- | --- |");
        foreach (var f in findings)
            sb.AppendLine($"| {f.Claim} | {f.Paper} | {f.Ours} | {(f.Verdict == Yes ? Yes : f.Verdict == No ? "**no**" : $"*{NotEnoughData}* ({f.Note})")} |");
        sb.AppendLine();
        sb.AppendLine(Summary(findings) + " by this run's numbers.");
        sb.AppendLine();

        void EpsTable(string title, IEnumerable<(string Label, string Model, string Method)> lines, bool top5 = true)
        {
            sb.AppendLine(title);
            sb.AppendLine();
            sb.AppendLine($"| model | method | | n | clean % [{Wilson.Name}] | eps 2 | eps 4 | eps 8 | eps 16 |");
            sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
            foreach (var (label, model, method) in lines)
            {
                var clean = r.Row(model, "clean", 0);
                var rows = Reproduction.Epsilons.Select(e => r.Row(model, method, e)).ToList();
                string n = rows[0].Count == clean.Count ? $"{clean.Count}" : $"{clean.Count} clean, {rows[0].Count} adv.";
                sb.AppendLine($"| {label} | {method} | top 1 | {n} | {Wilson.Format(clean.Top1, clean.Count)} | {string.Join(" | ", rows.Select(x => Wilson.Format(x.Top1, x.Count)))} |");
                if (top5) sb.AppendLine($"| | | top 5 | | {Wilson.Format(clean.Top5, clean.Count)} | {string.Join(" | ", rows.Select(x => Wilson.Format(x.Top5, x.Count)))} |");
            }
            sb.AppendLine();
        }

        EpsTable("## Table 1: step l.l. adversarial training, evaluated with step l.l.",
            new[] { ("baseline (clean training)", "A", "step-ll"), ("adversarial training", "adv-step-ll", "step-ll") });
        EpsTable("## Table 2: the same models on iterative examples",
            new[] { ("adversarial training", "adv-step-ll", "iter-ll"), ("baseline", "A", "iter-ll"), ("adversarial training", "adv-step-ll", "iter-basic"), ("baseline", "A", "iter-basic") });
        EpsTable("## Table 3: label leaking",
            new[] { ("trained and evaluated with step l.l.", "adv-step-ll", "step-ll"), ("trained and evaluated with FGSM", "adv-fgsm", "fgsm") });
        sb.AppendLine("Label-leak checks (the same FGSM examples built from the true and from the predicted label):");
        sb.AppendLine();
        foreach (var m in new[] { "adv-fgsm", "adv-step-ll", "A" })
            foreach (var l in r.Models[m].OneStep.LabelLeaks.Where(l => l.Epsilon == 16 || l.AboveClean))
                sb.AppendLine($"- {m}: {l.Verdict}");
        sb.AppendLine();

        foreach (var (title, pick, count, denominator) in new (string, Func<TransferRow, double>, Func<TransferRow, int>, string)[]
                 {
                     ("Table 4: transfer rate", x => x.TransferRate, x => x.SourceFooled, "n = the source's adversarial examples that fooled the source (right when clean, wrong when attacked)"),
                     ("Table 6: error rate of transferred examples", x => x.ErrorRate, x => x.Count, "n = every test image"),
                 })
        {
            sb.AppendLine($"## {title}, eps 16 (A, B: SmallCnn with different seeds; C: ELU; D: SmallResNet)");
            sb.AppendLine();
            sb.AppendLine($"Each cell: rate in percent (n), {denominator}; rates from a small n are uncertain ({TransferCell(0.625, 8)} with {Wilson.Name}).");
            sb.AppendLine();
            sb.AppendLine("| source | FGSM A | B | C | D | basic iter. A | B | C | D | iter. l.l. A | B | C | D |");
            sb.AppendLine("| --- |" + string.Concat(Enumerable.Repeat(" --- |", 12)));
            foreach (var s in new[] { "A", "B", "C", "D" })
                sb.AppendLine($"| {s} | " + string.Join(" | ", new[] { "fgsm", "iter-basic", "iter-ll" }.SelectMany(m => new[] { "A", "B", "C", "D" }
                    .Select(t => r.Table4.Get(s, t, m, 16)).Select(x => $"{P(pick(x))} ({count(x)})"))) + " |");
            sb.AppendLine();
        }

        sb.AppendLine("## Table 5: one-step methods for adversarial training, evaluated with FGSM");
        sb.AppendLine();
        sb.AppendLine("| trained with | clean | eps 2 | eps 4 | eps 8 | eps 16 |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var (label, model) in new[] { ("no adversarial training", "A"), ("FGSM", "adv-fgsm"), ("step l.l.", "adv-step-ll"), ("step rnd.", "adv-step-rnd"), ("sign of random perturbation", "adv-random-sign") })
            sb.AppendLine($"| {label} | {P(r.Row(model, "clean", 0).Top1)} | {string.Join(" | ", Reproduction.Epsilons.Select(e => P(r.Row(model, "fgsm", e).Top1)))} |");
        sb.AppendLine();

        sb.AppendLine("## Figure 1: model capacity (rho) and the adv/clean accuracy ratio");
        sb.AppendLine();
        sb.AppendLine("| rho | training | clean | step l.l. 16 ratio | iter. l.l. 2 ratio | basic iter. 16 ratio |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var (rho, b, a) in new[] { ("0.5", "base-rho0.5", "adv-rho0.5"), ("1", "A", "adv-step-ll"), ("2", "base-rho2", "adv-rho2") })
            foreach (var (kind, m) in new[] { ("clean", b), ("step l.l.", a) })
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {rho} | {kind} | {P(r.Row(m, "clean", 0).Top1)} | {r.Row(m, "step-ll", 16).AccuracyRatio:F3} | {r.Row(m, "iter-ll", 2).AccuracyRatio:F3} | {r.Row(m, "iter-basic", 16).AccuracyRatio:F3} |");
        sb.AppendLine();

        sb.AppendLine("## Table 7: activations under step l.l. adversarial training");
        sb.AppendLine();
        EpsTable("", new[] { "relu:adv-step-ll", "relu6:adv-relu6", "ReluDecay 0.01:adv-reludecay", "tanh:adv-tanh" }
            .SelectMany(x => new[] { "step-ll", "iter-ll", "iter-basic" }.Select(m => (x.Split(':')[0], x.Split(':')[1], m))), top5: false);

        sb.AppendLine("## Models");
        sb.AppendLine();
        sb.AppendLine("| name | role | network | training time |");
        sb.AppendLine("| --- | --- | --- | --- |");
        foreach (var m in r.Models.Values) sb.AppendLine(CultureInfo.InvariantCulture, $"| {m.Plan.Name} | {m.Plan.Role} | {m.Plan.Spec} | {m.TrainSeconds:F0} s |");
        sb.AppendLine();
        sb.AppendLine("## Figures");
        sb.AppendLine();
        foreach (var fig in figures) sb.AppendLine($"![{fig}]({fig})");
        return sb.ToString();
    }

    /// <summary>"62.5% (n = 8; Wilson 95% 30.6-86.3%)": a rate with its denominator and interval.</summary>
    public static string TransferCell(double rate, int n)
    {
        var (low, high) = Wilson.OfRate(rate, n);
        return $"{P(rate)} (n = {n}; {P(low)}-{P(high)})";
    }

    public static string Json(StudyResults r, IReadOnlyList<Finding> findings) => JsonSerializer.Serialize(new
    {
        profile = r.Profile,
        trainCount = r.TrainCount,
        testCount = r.TestCount,
        iterativeTestCount = r.IterativeTestCount,
        minutes = r.Elapsed.TotalMinutes,
        findings,
        accuracy = r.Models.Values.SelectMany(m => m.OneStep.Rows.Concat(m.Iterative?.Rows.Where(x => x.Method != "clean") ?? Enumerable.Empty<AccuracyRow>())),
        labelLeaks = r.Models.Values.SelectMany(m => m.OneStep.LabelLeaks),
        transfer = r.Table4.Rows,
        transferByEpsilon = r.Figure2.Rows,
    }, new JsonSerializerOptions { WriteIndented = true, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals });
}
