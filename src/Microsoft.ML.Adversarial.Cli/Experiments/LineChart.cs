using System.Globalization;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Cli.Experiments;

/// <summary>One line of a <see cref="LineChart"/>; NaN values leave a gap.</summary>
internal sealed record ChartSeries(string Label, double[] X, double[] Y, bool Dashed = false);

/// <summary>
/// The report's line charts, drawn with SkiaSharp 2.88 directly. Not ScottPlot: ScottPlot 5.1 needs SkiaSharp 3,
/// and one process gets one SkiaSharp, which must be the 2.88 that ML.NET ImageAnalytics 5.0 calls (with 3.x every
/// image folder failed with MissingMethodException: SKBitmap.GetPixelSpan). Text uses the DejaVu Sans font embedded
/// in this assembly, not the system's fonts: a fresh machine may have none, and then every label would silently
/// be missing.
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

    /// <summary>Height in pixels of the band at the top that holds the title.</summary>
    public const int TitleBand = 44;

    public SKBitmap Render(int width, int height)
    {
        var typeface = ChartFont.Typeface;
        var bitmap = new SKBitmap(new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Premul));
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Typeface = typeface, IsAntialias = true, Color = SKColors.Black, TextSize = 13 };

        float left = 78, right = width - 16, top = TitleBand + 6, bottom = height - 56;
        var (xMin, xMax) = Range(Series.SelectMany(s => s.X));
        var (yMin, yMax) = Range(Series.SelectMany(s => s.Y));
        var xTicks = Ticks(ref xMin, ref xMax);
        var yTicks = Ticks(ref yMin, ref yMax);
        float X(double v) => (float)(left + (v - xMin) / (xMax - xMin) * (right - left));
        float Y(double v) => (float)(bottom - (v - yMin) / (yMax - yMin) * (bottom - top));

        using (var grid = new SKPaint { Color = new SKColor(0xe6, 0xe6, 0xe6), StrokeWidth = 1, IsAntialias = false })
        {
            foreach (double t in xTicks) canvas.DrawLine(X(t), top, X(t), bottom, grid);
            foreach (double t in yTicks) canvas.DrawLine(left, Y(t), right, Y(t), grid);
        }
        using (var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, Style = SKPaintStyle.Stroke })
            canvas.DrawRect(left, top, right - left, bottom - top, axis);

        text.TextAlign = SKTextAlign.Center;
        foreach (double t in xTicks) canvas.DrawText(Format(t), X(t), bottom + 17, text);
        text.TextAlign = SKTextAlign.Right;
        foreach (double t in yTicks) canvas.DrawText(Format(t), left - 6, Y(t) + 4.5f, text);

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
        canvas.ClipRect(new SKRect(left, top, right, bottom));
        for (int i = 0; i < Series.Count; i++) DrawSeries(canvas, Series[i], Palette[i % Palette.Length], X, Y);
        canvas.Restore();
        DrawLegend(canvas, text, right, top);
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

    private static void DrawSeries(SKCanvas canvas, ChartSeries s, SKColor color, Func<double, float> x, Func<double, float> y)
    {
        using var line = new SKPaint { Color = color, StrokeWidth = 2, Style = SKPaintStyle.Stroke, IsAntialias = true };
        if (s.Dashed) line.PathEffect = SKPathEffect.CreateDash(new[] { 8f, 5f }, 0);
        using var marker = new SKPaint { Color = color, Style = SKPaintStyle.Fill, IsAntialias = true };
        using var path = new SKPath();
        bool pen = false;
        for (int i = 0; i < Math.Min(s.X.Length, s.Y.Length); i++)
        {
            if (!double.IsFinite(s.X[i]) || !double.IsFinite(s.Y[i])) { pen = false; continue; }
            var p = new SKPoint(x(s.X[i]), y(s.Y[i]));
            if (pen) path.LineTo(p); else path.MoveTo(p);
            pen = true;
            canvas.DrawCircle(p, 3.5f, marker);
        }
        canvas.DrawPath(path, line);
    }

    private void DrawLegend(SKCanvas canvas, SKPaint text, float right, float top)
    {
        if (Series.Count == 0) return;
        text.TextSize = 12;
        text.TextAlign = SKTextAlign.Left;
        float rowHeight = 17, sample = 28;
        float textWidth = Series.Max(s => text.MeasureText(s.Label));
        float w = sample + 14 + textWidth, h = rowHeight * Series.Count + 8;
        var box = new SKRect(right - w - 8, top + 8, right - 8, top + 8 + h);
        using (var fill = new SKPaint { Color = SKColors.White.WithAlpha(230), Style = SKPaintStyle.Fill })
            canvas.DrawRect(box, fill);
        using (var border = new SKPaint { Color = new SKColor(0x99, 0x99, 0x99), Style = SKPaintStyle.Stroke, StrokeWidth = 1 })
            canvas.DrawRect(box, border);
        for (int i = 0; i < Series.Count; i++)
        {
            float cy = box.Top + 4 + rowHeight * i + rowHeight / 2;
            using var line = new SKPaint { Color = Palette[i % Palette.Length], StrokeWidth = 2, Style = SKPaintStyle.Stroke, IsAntialias = true };
            if (Series[i].Dashed) line.PathEffect = SKPathEffect.CreateDash(new[] { 6f, 4f }, 0);
            canvas.DrawLine(box.Left + 5, cy, box.Left + 5 + sample, cy, line);
            canvas.DrawText(Series[i].Label, box.Left + 10 + sample, cy + 4, text);
        }
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
