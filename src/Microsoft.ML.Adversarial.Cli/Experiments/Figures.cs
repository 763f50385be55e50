using ScottPlot;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Experiments;

/// <summary>The report's PNG figures (ScottPlot), each written to a temporary file and renamed.</summary>
internal static class Figures
{
    public static IReadOnlyList<string> Write(StudyResults r, string folder)
    {
        var written = new List<string>();
        double[] eps = Reproduction.Epsilons;

        var acc = new Plot();
        foreach (var (model, label) in new[] { ("A", "baseline"), ("adv-step-ll", "step l.l. adv.") })
            foreach (var method in new[] { "step-ll", "fgsm", "iter-basic", "iter-ll" })
            {
                var s = acc.Add.Scatter(eps, eps.Select(e => r.Row(model, method, e).Top1 * 100).ToArray());
                s.LegendText = $"{label}, {method}";
                if (model == "A") s.LinePattern = LinePattern.Dashed;
            }
        Finish(acc, "Top-1 accuracy against epsilon", "epsilon (pixel values)", "top-1 accuracy (%)");
        written.Add(Save(acc, folder, "accuracy-vs-epsilon.png"));

        var fig2 = new Plot();
        foreach (var method in new[] { "fgsm", "iter-basic", "iter-ll" })
            fig2.Add.Scatter(eps, eps.Select(e => r.Figure2.Get("A", "B", method, e).TransferRate * 100).ToArray()).LegendText = method;
        Finish(fig2, "Transfer rate A to B against epsilon (Fig. 2)", "epsilon (pixel values)", "transfer rate (%)");
        written.Add(Save(fig2, folder, "fig2-transfer-vs-epsilon.png"));

        var fig1 = new Plot();
        double[] rhos = { 0.5, 1, 2 };
        foreach (var (kind, names) in new[] { ("baseline", new[] { "base-rho0.5", "A", "base-rho2" }), ("step l.l. adv.", new[] { "adv-rho0.5", "adv-step-ll", "adv-rho2" }) })
            foreach (var (method, e) in new[] { ("step-ll", 16.0), ("iter-ll", 2.0), ("iter-basic", 16.0) })
            {
                var s = fig1.Add.Scatter(rhos, names.Select(n => r.Row(n, method, e).AccuracyRatio).ToArray());
                s.LegendText = $"{kind}, {method} eps {e}";
                if (kind == "baseline") s.LinePattern = LinePattern.Dashed;
            }
        Finish(fig1, "Adversarial/clean accuracy ratio against width rho (Fig. 1)", "rho", "accuracy ratio");
        written.Add(Save(fig1, folder, "fig1-ratio-vs-rho.png"));
        return written;
    }

    private static void Finish(Plot plot, string title, string x, string y)
    {
        plot.Title(title);
        plot.XLabel(x);
        plot.YLabel(y);
        plot.ShowLegend(Alignment.UpperRight);
    }

    private static string Save(Plot plot, string folder, string name)
    {
        string path = Path.Combine(folder, name);
        string tmp = Path.Combine(folder, $".{Path.GetFileNameWithoutExtension(name)}.tmp-{Environment.ProcessId}.png");
        plot.SavePng(tmp, 900, 600);
        File.Move(tmp, path, overwrite: true);
        return name;
    }
}
