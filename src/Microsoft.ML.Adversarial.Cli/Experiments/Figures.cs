namespace Microsoft.ML.Adversarial.Cli.Experiments;

/// <summary>The report's PNG figures (<see cref="LineChart"/>), each written to a temporary file and renamed.</summary>
internal static class Figures
{
    public static IReadOnlyList<string> Write(StudyResults r, string folder)
    {
        var written = new List<string>();
        double[] eps = Reproduction.Epsilons;

        var acc = new LineChart { Title = "Top-1 accuracy against epsilon", XLabel = "epsilon (pixel values)", YLabel = "top-1 accuracy (%)" };
        foreach (var (model, label) in new[] { ("A", "baseline"), ("adv-step-ll", "step l.l. adv.") })
            foreach (var method in new[] { "step-ll", "fgsm", "iter-basic", "iter-ll" })
                acc.Series.Add(new ChartSeries($"{label}, {method}", eps, eps.Select(e => r.Row(model, method, e).Top1 * 100).ToArray(), Dashed: model == "A"));
        written.Add(Save(acc, folder, "accuracy-vs-epsilon.png"));

        var fig2 = new LineChart { Title = "Transfer rate A to B against epsilon (Fig. 2)", XLabel = "epsilon (pixel values)", YLabel = "transfer rate (%)" };
        foreach (var method in new[] { "fgsm", "iter-basic", "iter-ll" })
            fig2.Series.Add(new ChartSeries(method, eps, eps.Select(e => r.Figure2.Get("A", "B", method, e).TransferRate * 100).ToArray()));
        written.Add(Save(fig2, folder, "fig2-transfer-vs-epsilon.png"));

        var fig1 = new LineChart { Title = "Adversarial/clean accuracy ratio against width rho (Fig. 1)", XLabel = "rho", YLabel = "accuracy ratio" };
        double[] rhos = { 0.5, 1, 2 };
        foreach (var (kind, names) in new[] { ("baseline", new[] { "base-rho0.5", "A", "base-rho2" }), ("step l.l. adv.", new[] { "adv-rho0.5", "adv-step-ll", "adv-rho2" }) })
            foreach (var (method, e) in new[] { ("step-ll", 16.0), ("iter-ll", 2.0), ("iter-basic", 16.0) })
                fig1.Series.Add(new ChartSeries($"{kind}, {method} eps {e}", rhos, names.Select(n => r.Row(n, method, e).AccuracyRatio).ToArray(), Dashed: kind == "baseline"));
        written.Add(Save(fig1, folder, "fig1-ratio-vs-rho.png"));
        return written;
    }

    private static string Save(LineChart chart, string folder, string name)
    {
        chart.SavePng(Path.Combine(folder, name), 900, 600);
        return name;
    }
}
