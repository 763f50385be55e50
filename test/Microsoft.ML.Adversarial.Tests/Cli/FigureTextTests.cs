using Microsoft.ML.Adversarial.Cli.Experiments;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>The report's figures carry their text whatever fonts the machine has (the font is embedded in advml).</summary>
[TestClass]
public sealed class FigureTextTests
{
    private static LineChart Chart(string title, string x, string y, string legend) => new()
    {
        Title = title, XLabel = x, YLabel = y,
        Series = { new ChartSeries(legend, new double[] { 0, 2, 4, 8, 16 }, new double[] { 90, 80, 60, double.NaN, 20 }, Dashed: true) },
    };

    /// <summary>Pixels darker than mid-grey in a rectangle.</summary>
    private static int Ink(SKBitmap b, int x0, int y0, int x1, int y1)
    {
        int n = 0;
        for (int y = y0; y < y1; y++)
            for (int x = x0; x < x1; x++)
            {
                var c = b.GetPixel(x, y);
                if (c.Red + c.Green + c.Blue < 3 * 128) n++;
            }
        return n;
    }

    [TestMethod]
    public void TitleAxisLabelsAndLegendAreDrawn()
    {
        using var with = Chart("Top-1 accuracy against epsilon", "epsilon (pixel values)", "top-1 accuracy (%)", "baseline, fgsm").Render(900, 600);
        using var without = Chart("", "", "", "").Render(900, 600);
        // Title band: empty without a title; a line of text with one (a 30-character title in 18 px is thousands of pixels).
        Assert.AreEqual(0, Ink(without, 0, 0, 900, LineChart.TitleBand));
        int title = Ink(with, 0, 0, 900, LineChart.TitleBand);
        Assert.IsTrue(title > 300, $"the title band has {title} dark pixels; the title was not drawn (no usable font?)");
        // X label band (below the tick labels) and the rotated y label (left of the tick labels).
        Assert.IsTrue(Ink(with, 0, 570, 900, 600) > 150 && Ink(without, 0, 570, 900, 600) == 0, "x axis label");
        Assert.IsTrue(Ink(with, 0, 0, 30, 600) > 150 && Ink(without, 0, 0, 30, 600) == 0, "y axis label");
        // Tick labels: both charts have them.
        Assert.IsTrue(Ink(without, 30, 50, 76, 544) > 100, "y tick labels");
        // Legend: the box the layout puts right of the plot holds the label's text (both have the line sample).
        using var paint = new SKPaint { Typeface = ChartFont.Typeface, TextSize = 12 };
        SKRect Box(string legend) => Chart("t", "x", "y", legend).Layout(900, 600, l => paint.MeasureText(l)).Legend;
        var (a, b) = (Box("baseline, fgsm"), Box(""));
        int legendWith = Ink(with, (int)a.Left, (int)a.Top, (int)a.Right, (int)a.Bottom), legendWithout = Ink(without, (int)b.Left, (int)b.Top, (int)b.Right, (int)b.Bottom);
        Assert.IsTrue(legendWith > legendWithout + 100, $"legend text: {legendWith} vs {legendWithout} dark pixels");
    }

    [TestMethod]
    public void TheFontIsTheEmbeddedOneNotTheSystems()
    {
        // A machine without fonts gives SkiaSharp an empty default typeface; the embedded one has DejaVu's glyphs.
        Assert.AreEqual("DejaVu Sans", ChartFont.Typeface.FamilyName);
        Assert.IsTrue(ChartFont.Typeface.GlyphCount > 1000);
    }

    [TestMethod]
    public void SavedFiguresArePngsAndLeaveNoTemporaryFile()
    {
        string dir = TestData.TempFolder(), path = Path.Combine(dir, "f.png");
        Chart("t", "x", "y", "s").SavePng(path, 300, 200);
        using var back = SKBitmap.Decode(path);
        Assert.AreEqual((300, 200), (back.Width, back.Height));
        Assert.AreEqual(1, Directory.GetFiles(dir).Length);
    }
}
