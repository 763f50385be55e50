using System.Globalization;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Cli.Experiments;

/// <summary>
/// One line of a <see cref="LineChart"/>; NaN values leave a gap. <paramref name="Low"/> and <paramref name="High"/>,
/// when given, are each point's 95% interval, drawn as error bars.
/// </summary>
internal sealed record ChartSeries(string Label, double[] X, double[] Y, bool Dashed = false, double[]? Low = null, double[]? High = null);

/// <summary>How the x axis places values.</summary>
internal enum AxisScale
{
    /// <summary>Evenly spaced values, round ticks.</summary>
    Linear,
    /// <summary>
    /// log2 (epsilon 2, 4, 8, 16 or rho 0.5, 1, 2 equally spaced), a tick at each value; x = 0 (the clean point) sits one
    /// step left of the smallest positive value, labelled <see cref="LineChart.ZeroLabel"/>.
    /// </summary>
    Log2,
}

/// <summary>Where a chart's parts go: the plot area, the legend beside it (never over it), the axes' ranges and ticks.</summary>
internal sealed record ChartLayout(SKRect Plot, SKRect Legend, double XMin, double XMax, double YMin, double YMax,
    IReadOnlyList<(double Value, string Label)> XTicks, IReadOnlyList<double> YTicks, Func<double, double> XTransform)
{
    /// <summary>The pixel column of data value x.</summary>
    public float X(double x) => (float)(Plot.Left + (XTransform(x) - XMin) / (XMax - XMin) * Plot.Width);

    /// <summary>The pixel row of data value y.</summary>
    public float Y(double y) => (float)(Plot.Bottom - (y - YMin) / (YMax - YMin) * Plot.Height);
}

/// <summary>
/// The report's line charts, drawn with SkiaSharp 2.88 directly. Not ScottPlot: ScottPlot 5.1 needs SkiaSharp 3,
/// and one process gets one SkiaSharp, which must be the 2.88 that ML.NET ImageAnalytics 5.0 calls (with 3.x every
/// image folder failed with MissingMethodException: SKBitmap.GetPixelSpan). Text uses the DejaVu Sans font embedded
/// in this assembly, not the system's fonts: a fresh machine may have none, and then every label would silently
/// be missing. The legend sits right of the plot area, so it never covers a point; error bars show each point's
/// interval; the y range is clamped to <see cref="YBounds"/> (0-100 for percentages).
/// </summary>
internal sealed class LineChart
{
    // Category10: distinct on screen and in print.
    private static readonly SKColor[] Palette =
    {
        new(0x1f, 0x77, 0xb4), new(0xff, 0x7f, 0x0e), new(0x2c, 0xa0, 0x2c), new(0xd6, 0x27, 0x28), new(0x94, 0x67, 0xbd),
        new(0x8c, 0x56, 0x4b), new(0xe3, 0x77, 0xc2), new(0x7f, 0x7f, 0x7f), new(0xbc, 0xbd, 0x22), new(0x17, 0xbe, 0xcf),
    };

    public string Title { get; init; } = "";
    public string XLabel { get; init; } = "";
    public string YLabel { get; init; } = "";
    public List<ChartSeries> Series { get; } = new();

    /// <summary>How x values are placed.</summary>
    public AxisScale XScale { get; init; } = AxisScale.Linear;

    /// <summary>The label of x = 0 on a <see cref="AxisScale.Log2"/> axis.</summary>
    public string ZeroLabel { get; init; } = "clean";

    /// <summary>
    /// The values y can take (e.g. 0 and 100 for a percentage; null: unbounded): the axis never goes beyond them,
    /// however the data and padding fall.
    /// </summary>
    public (double? Min, double? Max) YBounds { get; init; }

    /// <summary>
    /// The narrowest y range shown: data that barely varies (every point at 100%) gets this span, so rounding noise
    /// is not blown up to fill the plot. Default: a tenth of <see cref="YBounds"/> when both are set, else 0.
    /// </summary>
    public double? MinYSpan { get; init; }

    /// <summary>Height in pixels of the band at the top that holds the title.</summary>
    public const int TitleBand = 44;

    private const float LegendText = 12, LegendRow = 17, LegendSample = 28, LegendGap = 12;

    /// <summary>Where everything goes at this size; <paramref name="measure"/> gives a legend label's width in pixels.</summary>
    public ChartLayout Layout(int width, int height, Func<string, float> measure)
    {
        float legendWidth = Series.Count == 0 ? 0 : LegendSample + 18 + Series.Max(s => measure(s.Label));
        float left = 78, top = TitleBand + 6, bottom = height - 56;
        float right = Series.Count == 0 ? width - 16 : width - 10 - legendWidth - LegendGap;
        // A legend wider than half the figure is cut to keep the plot usable (labels are short in practice).
        right = Math.Max(right, left + (width - left) / 2);
        var legend = Series.Count == 0 ? SKRect.Empty : new SKRect(right + LegendGap, top, width - 10, top + LegendRow * Series.Count + 8);

        Func<double, double> transform = x => x;
        double xMin, xMax;
        var xTicks = new List<(double, string)>();
        var xs = Series.SelectMany(s => s.X).Where(double.IsFinite).ToList();
        if (XScale == AxisScale.Log2)
        {
            var positive = xs.Where(x => x > 0).Distinct().OrderBy(x => x).ToList();
            double zero = positive.Count > 0 ? Math.Log2(positive[0]) - 1 : 0;
            transform = x => x > 0 ? Math.Log2(x) : zero;
            if (xs.Any(x => x <= 0)) xTicks.Add((0, ZeroLabel));
            foreach (var x in positive) xTicks.Add((x, Format(x)));
            var t = xTicks.Select(v => transform(v.Item1)).DefaultIfEmpty(0).ToList();
            (xMin, xMax) = (t.Min() - 0.35, t.Max() + 0.35);
        }
        else
        {
            (xMin, xMax) = Range(xs);
            xTicks.AddRange(Ticks(ref xMin, ref xMax).Select(v => (v, Format(v))));
        }
        var (yMin, yMax) = YRange();
        var yTicks = Ticks(ref yMin, ref yMax);
        (yMin, yMax) = Clamp(yMin, yMax);
        yTicks = yTicks.Where(v => v >= yMin - 1e-9 && v <= yMax + 1e-9).ToList();
        return new ChartLayout(new SKRect(left, top, right, bottom), legend, xMin, xMax, yMin, yMax, xTicks, yTicks, transform);
    }

    /// <summary>The y range: the data and its intervals, padded, at least <see cref="MinYSpan"/> wide, inside <see cref="YBounds"/>.</summary>
    internal (double Min, double Max) YRange()
    {
        var values = Series.SelectMany(s => s.Y.Concat(s.Low ?? Array.Empty<double>()).Concat(s.High ?? Array.Empty<double>())).Where(double.IsFinite).ToList();
        double minSpan = MinYSpan ?? (YBounds is { Min: { } bl, Max: { } bh } ? (bh - bl) / 10 : 0);
        double lo, hi;
        if (values.Count == 0) (lo, hi) = (YBounds.Min ?? 0, YBounds.Max ?? 1);
        else
        {
            (lo, hi) = (values.Min(), values.Max());
            if (hi - lo < minSpan) { double c = (lo + hi) / 2; (lo, hi) = (c - minSpan / 2, c + minSpan / 2); }
            if (hi - lo < 1e-12) { double pad0 = Math.Max(Math.Abs(lo) * 0.1, 0.5); (lo, hi) = (lo - pad0, hi + pad0); }
            double pad = (hi - lo) * 0.06;
            (lo, hi) = (lo - pad, hi + pad);
        }
        (lo, hi) = Clamp(lo, hi);
        // Clamping one side narrows the range: give the width back on the other side, still inside the bounds.
        if (hi - lo < minSpan)
        {
            if (YBounds.Max is { } max && hi >= max) lo = hi - minSpan;
            else hi = lo + minSpan;
            (lo, hi) = Clamp(lo, hi);
        }
        return (lo, hi);
    }

    private (double, double) Clamp(double lo, double hi) =>
        (YBounds.Min is { } min ? Math.Max(lo, min) : lo, YBounds.Max is { } max ? Math.Min(hi, max) : hi);

    public SKBitmap Render(int width, int height)
    {
        var typeface = ChartFont.Typeface;
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Typeface = typeface, IsAntialias = true, Color = SKColors.Black, TextSize = LegendText };
        var layout = Layout(width, height, label => text.MeasureText(label));
        text.TextSize = 13;
        var plot = layout.Plot;
        float left = plot.Left, right = plot.Right, top = plot.Top, bottom = plot.Bottom;

        using (var grid = new SKPaint { Color = new SKColor(0xe6, 0xe6, 0xe6), StrokeWidth = 1, IsAntialias = false })
        {
            foreach (var (t, _) in layout.XTicks) canvas.DrawLine(layout.X(t), top, layout.X(t), bottom, grid);
            foreach (double t in layout.YTicks) canvas.DrawLine(left, layout.Y(t), right, layout.Y(t), grid);
        }
        using (var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, Style = SKPaintStyle.Stroke })
            canvas.DrawRect(left, top, right - left, bottom - top, axis);

        text.TextAlign = SKTextAlign.Center;
        foreach (var (t, label) in layout.XTicks) canvas.DrawText(label, layout.X(t), bottom + 17, text);
        text.TextAlign = SKTextAlign.Right;
        foreach (double t in layout.YTicks) canvas.DrawText(Format(t), left - 6, layout.Y(t) + 4.5f, text);

        text.TextAlign = SKTextAlign.Center;
        text.TextSize = 15;
        canvas.DrawText(XLabel, (left + right) / 2, height - 16, text);
        canvas.Save();
        canvas.RotateDegrees(-90, 20, (top + bottom) / 2);
        canvas.DrawText(YLabel, 20, (top + bottom) / 2 + 5, text);
        canvas.Restore();
        text.TextSize = 18;
        canvas.DrawText(Title, width / 2f, TitleBand - 14, text);

        canvas.Save();
        // A little outside the frame, so a marker at the edge (100%) is drawn whole.
        canvas.ClipRect(new SKRect(left - 5, top - 5, right + 5, bottom + 5));
        for (int i = 0; i < Series.Count; i++) DrawSeries(canvas, Series[i], Palette[i % Palette.Length], layout);
        canvas.Restore();
        DrawLegend(canvas, text, layout.Legend);
        return bitmap;
    }

    /// <summary>Writes the chart as a PNG under a temporary name, then renames it.</summary>
    public void SavePng(string path, int width, int height)
    {
        using var bitmap = Render(width, height);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException($"SkiaSharp could not encode '{path}' as PNG.");
        string tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileNameWithoutExtension(path)}.tmp-{Environment.ProcessId}.png");
        using (var file = File.Create(tmp)) data.SaveTo(file);
        File.Move(tmp, path, overwrite: true);
    }

    private static void DrawSeries(SKCanvas canvas, ChartSeries s, SKColor color, ChartLayout layout)
    {
        using var line = new SKPaint { Color = color, StrokeWidth = 2, Style = SKPaintStyle.Stroke, IsAntialias = true };
        if (s.Dashed) line.PathEffect = SKPathEffect.CreateDash(new[] { 8f, 5f }, 0);
        using var bar = new SKPaint { Color = color.WithAlpha(200), StrokeWidth = 1.3f, Style = SKPaintStyle.Stroke, IsAntialias = true };
        using var marker = new SKPaint { Color = color, Style = SKPaintStyle.Fill, IsAntialias = true };
        using var path = new SKPath();
        bool pen = false;
        for (int i = 0; i < Math.Min(s.X.Length, s.Y.Length); i++)
        {
            if (!double.IsFinite(s.X[i]) || !double.IsFinite(s.Y[i])) { pen = false; continue; }
            var p = new SKPoint(layout.X(s.X[i]), layout.Y(s.Y[i]));
            if (pen) path.LineTo(p); else path.MoveTo(p);
            pen = true;
            if (s.Low is { } low && s.High is { } high && i < low.Length && i < high.Length && double.IsFinite(low[i]) && double.IsFinite(high[i]))
            {
                float y0 = layout.Y(low[i]), y1 = layout.Y(high[i]);
                canvas.DrawLine(p.X, y0, p.X, y1, bar);
                canvas.DrawLine(p.X - 4, y0, p.X + 4, y0, bar);
                canvas.DrawLine(p.X - 4, y1, p.X + 4, y1, bar);
            }
            canvas.DrawCircle(p, 3.5f, marker);
        }
        canvas.DrawPath(path, line);
    }

    private void DrawLegend(SKCanvas canvas, SKPaint text, SKRect box)
    {
        if (Series.Count == 0) return;
        text.TextSize = LegendText;
        text.TextAlign = SKTextAlign.Left;
        using (var fill = new SKPaint { Color = SKColors.White, Style = SKPaintStyle.Fill })
            canvas.DrawRect(box, fill);
        using (var border = new SKPaint { Color = new SKColor(0x99, 0x99, 0x99), Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
            canvas.DrawRect(box, border);
        canvas.Save();
        canvas.ClipRect(box);
        for (int i = 0; i < Series.Count; i++)
        {
            float cy = box.Top + 4 + LegendRow * i + LegendRow / 2;
            using var line = new SKPaint { Color = Palette[i % Palette.Length], StrokeWidth = 2, Style = SKPaintStyle.Stroke, IsAntialias = true };
            if (Series[i].Dashed) line.PathEffect = SKPathEffect.CreateDash(new[] { 6f, 4f }, 0);
            canvas.DrawLine(box.Left + 5, cy, box.Left + 5 + LegendSample, cy, line);
            canvas.DrawText(Series[i].Label, box.Left + 10 + LegendSample, cy + 4, text);
        }
        canvas.Restore();
    }

    private static (double Min, double Max) Range(IEnumerable<double> values)
    {
        var finite = values.Where(double.IsFinite).ToList();
        if (finite.Count == 0) return (0, 1);
        double min = finite.Min(), max = finite.Max();
        if (max - min < 1e-12) { double pad = Math.Max(Math.Abs(min) * 0.1, 0.5); return (min - pad, max + pad); }
        double margin = (max - min) * 0.05;
        return (min - margin, max + margin);
    }

    /// <summary>About six round ticks (1, 2 or 5 times a power of ten) covering [min, max]; widens the range to them.</summary>
    private static List<double> Ticks(ref double min, ref double max)
    {
        double raw = (max - min) / 6, magnitude = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 5, 10 }.Select(m => m * magnitude).First(s => s >= raw);
        min = Math.Floor(min / step) * step;
        max = Math.Ceiling(max / step) * step;
        var ticks = new List<double>();
        for (double t = min; t <= max + step / 2; t += step) ticks.Add(Math.Round(t / step) * step);
        return ticks;
    }

    private static string Format(double v) => (Math.Abs(v) < 1e-12 ? 0 : v).ToString("G4", CultureInfo.InvariantCulture);
}

/// <summary>The charts' font: DejaVu Sans, embedded in this assembly (Fonts/DejaVuSans.ttf, licence beside it).</summary>
internal static class ChartFont
{
    private static readonly Lazy<SKTypeface> Loaded = new(Load);

    /// <summary>The typeface; throws when it cannot draw text, rather than letting figures come out without labels.</summary>
    public static SKTypeface Typeface => Loaded.Value;

    private static SKTypeface Load()
    {
        const string resource = "Microsoft.ML.Adversarial.Cli.Fonts.DejaVuSans.ttf";
        using var stream = typeof(ChartFont).Assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"The figure font ({resource}) is not embedded in advml; figures would have no text. Rebuild the tool.");
        var typeface = SKTypeface.FromStream(stream)
            ?? throw new InvalidOperationException($"SkiaSharp could not load the embedded figure font ({resource}); figures would have no text.");
        using var paint = new SKPaint { Typeface = typeface, TextSize = 12 };
        if (typeface.GlyphCount < 100 || paint.MeasureText("accuracy (%)") <= 0)
            throw new InvalidOperationException($"The embedded figure font ({resource}) has no usable glyphs ({typeface.GlyphCount}); figures would have no text.");
        return typeface;
    }
}
