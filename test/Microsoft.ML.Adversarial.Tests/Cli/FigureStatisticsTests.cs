using Microsoft.ML.Adversarial.Cli.Common;
using Microsoft.ML.Adversarial.Cli.Experiments;
using Microsoft.ML.Adversarial.Evaluation;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>Wilson intervals, verdicts that need model quality, and figure layouts (legend, y range, log2 epsilon axis).</summary>
[TestClass]
public sealed class FigureStatisticsTests
{
    [TestMethod]
    public void WilsonIntervalsMatchHandComputedValues()
    {
        const double z2 = Wilson.Z95 * Wilson.Z95;
        // k = n: the lower bound is n / (n + z^2) (the normal interval gives 100.0 ± 0.0).
        var all = Wilson.Interval(100, 100);
        Assert.AreEqual(100 / (100 + z2), all.Low, 1e-12);
        Assert.AreEqual(0.963, all.Low, 5e-4);
        Assert.AreEqual(1.0, all.High);
        var none = Wilson.Interval(0, 100);
        Assert.AreEqual(0.0, none.Low);
        Assert.AreEqual(1 - all.Low, none.High, 1e-12);
        // 50 of 100: centred at 0.5, half-width z sqrt(1/400 + z^2/40000) / (1 + z^2/100) = 0.09617.
        var half = Wilson.Interval(50, 100);
        Assert.AreEqual(0.40383, half.Low, 1e-5);
        Assert.AreEqual(0.59617, half.High, 1e-5);
        // 5 of 8 (the transfer table's 62.5%): [30.57%, 86.31%].
        var small = Wilson.Interval(5, 8);
        Assert.AreEqual(0.3057, small.Low, 1e-4);
        Assert.AreEqual(0.8631, small.High, 1e-4);
        Assert.AreEqual("100.0 [96.3, 100.0]", Wilson.Format(1.0, 100));
        Assert.AreEqual("-", Wilson.Format(double.NaN, 0));
        Assert.IsTrue(double.IsNaN(Wilson.Interval(0, 0).Low));
        // Differences count only beyond the combined intervals.
        Assert.IsTrue(Wilson.Above(0.9, 1000, 0.5, 1000));
        Assert.IsFalse(Wilson.Above(0.55, 40, 0.5, 40));
    }

    [TestMethod]
    public void FindingsOnModelsBelowTheMinimumAccuracyHaveNotEnoughData()
    {
        Assert.AreEqual(0.5, ReportWriter.MinCleanAccuracy);
        var weak = ReportWriter.Verdict(shown: true, new[] { ("A", 0.38), ("adv-step-ll", 0.80) });
        Assert.AreEqual(ReportWriter.NotEnoughData, weak.Verdict);
        StringAssert.Contains(weak.Note, "A 38.0%");
        Assert.AreEqual(ReportWriter.NotEnoughData, ReportWriter.Verdict(false, new[] { ("A", 0.39) }).Verdict);
        Assert.AreEqual(ReportWriter.NotEnoughData, ReportWriter.Verdict(true, new[] { ("A", double.NaN) }).Verdict);
        Assert.AreEqual(ReportWriter.Yes, ReportWriter.Verdict(true, new[] { ("A", 0.78), ("B", 0.5) }).Verdict);
        Assert.AreEqual(ReportWriter.No, ReportWriter.Verdict(false, new[] { ("A", 0.78) }).Verdict);
        var finding = new Finding("T1", "claim", "paper", "ours", ReportWriter.NotEnoughData);
        Assert.IsFalse(finding.Reproduced);
        Assert.AreEqual("0 of 1 findings reproduced (1 not enough data)", ReportWriter.Summary(new[] { finding }));
    }

    /// <summary>The reproduce accuracy figure's shape: 8 lines from the clean point to eps 16, the headline points high up at the right.</summary>
    private static LineChart AccuracyFigure()
    {
        double[] eps = { 2, 4, 8, 16 };
        var lines = Enumerable.Range(0, 8).Select(i => ($"step l.l. adv., method {i} with a long label", $"m{i}", i % 2 == 0,
            (Func<double, Microsoft.ML.Adversarial.Evaluation.AccuracyRow>)(e =>
                new("M", "m", e, 100, e == 0 ? 1.0 : 1.0 - i * 0.01 * Math.Log2(e), 1, double.NaN))));
        return Figures.AccuracyChart(lines, eps);
    }

    [TestMethod]
    public void TheLegendLiesOutsideThePlotSoItCoversNoPoint()
    {
        var chart = AccuracyFigure();
        using var paint = new SKPaint { Typeface = ChartFont.Typeface, TextSize = 12 };
        foreach (var (w, h) in new[] { (900, 600), (640, 480), (1600, 900) })
        {
            var layout = chart.Layout(w, h, s => paint.MeasureText(s));
            Assert.IsFalse(layout.Legend.IsEmpty);
            Assert.IsFalse(layout.Legend.IntersectsWith(layout.Plot), $"{w}x{h}: legend {layout.Legend} overlaps plot {layout.Plot}");
            Assert.IsTrue(layout.Legend.Right <= w && layout.Legend.Bottom <= h);
            foreach (var s in chart.Series)
                for (int i = 0; i < s.X.Length; i++)
                {
                    // Every point and the ends of its error bar are inside the plot, hence outside the legend.
                    foreach (var y in new[] { s.Y[i], s.Low![i], s.High![i] })
                    {
                        var p = new SKPoint(layout.X(s.X[i]), layout.Y(y));
                        Assert.IsTrue(layout.Plot.Contains(p.X, p.Y) || (p.Y == layout.Plot.Top || p.Y == layout.Plot.Bottom), $"{s.Label} point {i} at {p} is outside {layout.Plot}");
                        Assert.IsFalse(layout.Legend.Contains(p.X, p.Y));
                    }
                }
        }
    }

    [TestMethod]
    public void TheEpsilonAxisIsLog2WithTheCleanPointLeftOfTwo()
    {
        var chart = AccuracyFigure();
        var layout = chart.Layout(900, 600, s => s.Length * 7);
        CollectionAssert.AreEqual(new[] { "clean", "2", "4", "8", "16" }, layout.XTicks.Select(t => t.Label).ToArray());
        var xs = layout.XTicks.Select(t => layout.X(t.Value)).ToArray();
        // Equal steps: each doubling of epsilon is the same distance, and clean is one step left of 2.
        for (int i = 1; i < xs.Length; i++) Assert.AreEqual(xs[1] - xs[0], xs[i] - xs[i - 1], 0.01, $"step {i}");
        Assert.IsTrue(xs[0] > layout.Plot.Left && xs[^1] < layout.Plot.Right);
        // Every series starts at the clean point and carries error bars.
        Assert.IsTrue(chart.Series.All(s => s.X[0] == 0 && s.Low is not null && s.High is not null));
    }

    [TestMethod]
    public void YRangesAreClampedToPercentagesAndNotBlownUp()
    {
        // Every point at 100% (the smoke run's y axis went from 98.9 to 101.1).
        var flat = new LineChart { YBounds = (0, 100), Series = { new ChartSeries("s", new double[] { 0, 2, 4 }, new double[] { 100, 100, 100 }, Low: new[] { 96.3, 96.3, 96.3 }, High: new double[] { 100, 100, 100 }) } };
        var layout = flat.Layout(900, 600, s => 50);
        Assert.AreEqual(100, layout.YMax, 1e-9);
        Assert.IsTrue(layout.YMin >= 0 && layout.YMin <= 90, $"{layout.YMin}");
        Assert.IsTrue(layout.YTicks.All(t => t >= 0 && t <= 100));
        // At 0%: the axis starts at 0, never below.
        var zero = new LineChart { YBounds = (0, 100), Series = { new ChartSeries("s", new double[] { 2, 4 }, new double[] { 0, 0.5 }) } };
        var z = zero.YRange();
        Assert.AreEqual(0, z.Min);
        Assert.IsTrue(z.Max >= 10 && z.Max <= 100, $"{z.Max}");
        // Spread data: padded, still inside [0, 100].
        var spread = new LineChart { YBounds = (0, 100), Series = { new ChartSeries("s", new double[] { 2, 4 }, new double[] { 3, 99 }) } };
        var r = spread.Layout(900, 600, s => 50);
        Assert.IsTrue(r.YMin >= 0 && r.YMin <= 3 && r.YMax <= 100 && r.YMax >= 99, $"{r.YMin}..{r.YMax}");
        // Unbounded charts keep their data range.
        var free = new LineChart { Series = { new ChartSeries("s", new double[] { 1, 2 }, new double[] { 0.9, 1.3 }) } };
        var f = free.YRange();
        Assert.IsTrue(f.Min < 0.9 && f.Max > 1.3);
    }

    [TestMethod]
    public void PlainProgressLinesCarryCountsAndAnEta()
    {
        var writer = new StringWriter();
        var now = TimeSpan.Zero;
        var progress = new PlainProgress("training", "steps", writer, () => now);
        for (int step = 1; step <= 200; step++)
        {
            now = TimeSpan.FromSeconds(step * 0.5);
            progress.Report(step, 200, $"training: epoch {1 + (step - 1) / 100}/2, loss 0.5");
        }
        progress.Finish();
        var lines = writer.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.IsTrue(lines.Length is >= 10 and <= 12, string.Join("\n", lines));
        StringAssert.Contains(lines[0], "training: steps 20/200 (10%), epoch 1/2, loss 0.5, elapsed 0:10, ETA 1:30");
        StringAssert.Contains(lines[^1], "steps 200/200 (100%), epoch 2/2");
        StringAssert.EndsWith(lines[^1].TrimEnd(), "done");
        // Long gaps between tenths still give a line every PlainProgress.Interval.
        var slow = new StringWriter();
        var slowProgress = new PlainProgress("x", "images", slow, () => now);
        now = TimeSpan.Zero;
        slowProgress.Report(1, 1000, null);
        Assert.AreEqual("", slow.ToString());
        now = TimeSpan.FromSeconds(20);
        slowProgress.Report(2, 1000, null);
        now = TimeSpan.FromSeconds(25);
        slowProgress.Report(3, 1000, null);
        now = TimeSpan.FromSeconds(40);
        slowProgress.Report(4, 1000, null);
        var slowLines = slow.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(2, slowLines.Length, slow.ToString());
        StringAssert.Contains(slowLines[0], "x: images 2/1000 (0%), elapsed 0:20, ETA 2:46:20");
        Assert.AreEqual("1:02:05", PlainProgress.Clock(new TimeSpan(1, 2, 5)));
    }
}
