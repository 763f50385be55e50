using Microsoft.ML.Adversarial.Evaluation;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Experiments;

/// <summary>
/// The PNG figures (<see cref="LineChart"/>), each written to a temporary file and renamed: <c>reproduce</c>'s three,
/// and the same kinds for <c>evaluate --figures</c> (accuracy against epsilon) and <c>transfer --figures</c> (transfer
/// rate against epsilon). Rates carry their Wilson 95% intervals as error bars; epsilon is on a log2 axis with the
/// clean point (epsilon 0) left of the smallest epsilon.
/// </summary>
internal static class Figures
{
    public const int Width = 900, Height = 600;

    public static IReadOnlyList<string> Write(StudyResults r, string folder)
    {
        var written = new List<string>();
        var acc = AccuracyChart(new[] { ("A", "baseline"), ("adv-step-ll", "step l.l. adv.") }
            .SelectMany(m => new[] { "step-ll", "fgsm", "iter-basic", "iter-ll" }.Select(method =>
                ($"{m.Item2}, {method}", method, m.Item1 == "A", (Func<double, AccuracyRow>)(e => e == 0 ? r.Row(m.Item1, "clean", 0) : r.Row(m.Item1, method, e))))),
            Reproduction.Epsilons);
        written.Add(Save(acc, folder, "accuracy-vs-epsilon.png"));

        var fig2 = TransferChart(new[] { "fgsm", "iter-basic", "iter-ll" }.Select(method => (method, (Func<double, TransferRow>)(e => r.Figure2.Get("A", "B", method, e)))),
            Reproduction.Epsilons, "Transfer rate A to B against epsilon (Fig. 2)");
        written.Add(Save(fig2, folder, "fig2-transfer-vs-epsilon.png"));

        var fig1 = new LineChart
        {
            Title = "Adversarial/clean accuracy ratio against width rho (Fig. 1)", XLabel = "rho (log2 scale)", YLabel = "accuracy ratio",
            XScale = AxisScale.Log2, YBounds = (0, null),
        };
        double[] rhos = { 0.5, 1, 2 };
        foreach (var (kind, names) in new[] { ("baseline", new[] { "base-rho0.5", "A", "base-rho2" }), ("step l.l. adv.", new[] { "adv-rho0.5", "adv-step-ll", "adv-rho2" }) })
            foreach (var (method, e) in new[] { ("step-ll", 16.0), ("iter-ll", 2.0), ("iter-basic", 16.0) })
                fig1.Series.Add(new ChartSeries($"{kind}, {method} eps {e}", rhos, names.Select(n => r.Row(n, method, e).AccuracyRatio).ToArray(), Dashed: kind == "baseline"));
        written.Add(Save(fig1, folder, "fig1-ratio-vs-rho.png"));
        return written;
    }

    /// <summary>
    /// Top-1 accuracy against epsilon, one line per (label, method) with the clean accuracy at epsilon 0: what
    /// <c>evaluate --figures</c> and <c>reproduce</c> draw.
    /// </summary>
    public static LineChart AccuracyChart(IEnumerable<(string Label, string Method, bool Dashed, Func<double, AccuracyRow> Row)> lines, IReadOnlyList<double> epsilons,
        string title = "Top-1 accuracy against epsilon")
    {
        var chart = new LineChart
        {
            Title = title, XLabel = "epsilon (pixel values, log2 scale; clean = no attack)", YLabel = $"top-1 accuracy (%, {Wilson.Name})",
            XScale = AxisScale.Log2, YBounds = (0, 100),
        };
        var xs = new[] { 0.0 }.Concat(epsilons.Where(e => e > 0).OrderBy(e => e)).ToArray();
        foreach (var (label, _, dashed, row) in lines)
        {
            var rows = xs.Select(row).ToArray();
            var ci = rows.Select(x => Wilson.OfRate(x.Top1, x.Count)).ToArray();
            chart.Series.Add(new ChartSeries(label, xs, rows.Select(x => x.Top1 * 100).ToArray(), dashed,
                ci.Select(c => c.Low * 100).ToArray(), ci.Select(c => c.High * 100).ToArray()));
        }
        return chart;
    }

    /// <summary>Accuracy against epsilon for one model's report (every method it was evaluated with).</summary>
    public static LineChart AccuracyChart(RobustnessReport report)
    {
        var methods = report.Rows.Where(x => x.Method != "clean").Select(x => x.Method).Distinct().ToList();
        var epsilons = report.Rows.Where(x => x.Method != "clean").Select(x => x.Epsilon).Distinct().ToList();
        return AccuracyChart(methods.Select(m => (m, m, false, (Func<double, AccuracyRow>)(e => e == 0 ? report.Clean : report.Get(m, e)))), epsilons,
            $"Top-1 accuracy of {report.Model} against epsilon");
    }

    /// <summary>Transfer rate against epsilon, one line per label, with Wilson intervals over the source-fooled examples.</summary>
    public static LineChart TransferChart(IEnumerable<(string Label, Func<double, TransferRow> Row)> lines, IReadOnlyList<double> epsilons, string title)
    {
        var chart = new LineChart
        {
            Title = title, XLabel = "epsilon (pixel values, log2 scale)", YLabel = $"transfer rate (%, {Wilson.Name})",
            XScale = AxisScale.Log2, YBounds = (0, 100),
        };
        var xs = epsilons.Where(e => e > 0).OrderBy(e => e).ToArray();
        foreach (var (label, row) in lines)
        {
            var rows = xs.Select(row).ToArray();
            var ci = rows.Select(x => Wilson.OfRate(x.TransferRate, x.SourceFooled)).ToArray();
            chart.Series.Add(new ChartSeries(label, xs, rows.Select(x => x.TransferRate * 100).ToArray(), false,
                ci.Select(c => c.Low * 100).ToArray(), ci.Select(c => c.High * 100).ToArray()));
        }
        return chart;
    }

    /// <summary>Transfer rate against epsilon for every source-to-other-target pair and method of a transfer report.</summary>
    public static LineChart TransferChart(TransferReport report)
    {
        var pairs = report.Rows.Where(x => x.Source != x.Target).Select(x => (x.Source, x.Target, x.Method)).Distinct().ToList();
        var epsilons = report.Rows.Select(x => x.Epsilon).Distinct().ToList();
        return TransferChart(pairs.Select(p => ($"{p.Source} to {p.Target}, {p.Method}", (Func<double, TransferRow>)(e => report.Get(p.Source, p.Target, p.Method, e)))),
            epsilons, "Transfer rate against epsilon");
    }

    public static string Save(LineChart chart, string folder, string name)
    {
        chart.SavePng(Path.Combine(folder, name), Width, Height);
        return name;
    }
}
