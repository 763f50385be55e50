using System.Globalization;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Spectre.Console;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>Progress bars, training with progress, and result tables on the console.</summary>
internal static class ConsoleOutput
{
    /// <summary>
    /// Runs <paramref name="work"/> with a progress bar; the callback reports (done, total, description). When the
    /// output is not a terminal (a log file, CI, a pipe), plain lines replace the bar, each with the counts
    /// (<paramref name="unit"/>), the percentage, the elapsed time and an ETA (<see cref="PlainProgress"/>).
    /// </summary>
    public static T WithProgress<T>(string title, Func<Action<double, double, string?>, T> work, string unit = "images")
    {
        if (Console.IsOutputRedirected)
        {
            var plain = new PlainProgress(title, unit, Console.Out);
            var value = work(plain.Report);
            plain.Finish();
            return value;
        }
        T result = default!;
        AnsiConsole.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1);
                result = work((done, total, description) =>
                {
                    task.MaxValue = Math.Max(total, 1);
                    task.Value = done;
                    if (description is not null) task.Description = Markup.Escape(description);
                });
                task.Value = task.MaxValue;
            });
        return result;
    }

    /// <summary>
    /// Builds and trains a new network with a progress bar: the training step both <c>train</c> and <c>reproduce</c> use.
    /// </summary>
    public static TrainedModel TrainWithProgress(ModelSpec spec, IImageSource data, AdversarialTrainingOptions options, CheckpointOptions? checkpoints,
        torch.Device device, CancellationToken ct, string title = "training")
    {
        var trainer = new AdversarialTrainer(options, checkpoints);
        long total = options.MaxSteps ?? options.Epochs * trainer.StepsPerEpoch(data.RowCount);
        int epochs = options.Epochs;
        return WithProgress(title, report =>
        {
            var progress = new InlineProgress<TrainingProgress>(t =>
                report(t.Step, t.TotalSteps, string.Create(CultureInfo.InvariantCulture, $"{title}: epoch {t.Epoch}/{epochs}, loss {t.Loss:F3}, {t.ExamplesPerSecond:F0} img/s")));
            report(0, total, null);
            return trainer.TrainNew(spec, data, device, progress, ct);
        }, unit: "steps");
    }

    public static void Print(RobustnessReport report)
    {
        var table = new Table().Title(Markup.Escape(report.Model)).AddColumns("method", "eps", "n", Markup.Escape($"top-1 % [{Wilson.Name}]"), Markup.Escape($"top-5 % [{Wilson.Name}]"), "adv/clean");
        foreach (var r in report.Rows)
            table.AddRow(r.Method, r.Method == "clean" ? "-" : r.Epsilon.ToString(CultureInfo.InvariantCulture), r.Count.ToString(CultureInfo.InvariantCulture),
                Markup.Escape(Wilson.Format(r.Top1, r.Count)), Markup.Escape(Wilson.Format(r.Top5, r.Count)), r.AccuracyRatio.ToString("F3", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        foreach (var l in report.LabelLeaks.Where(l => l.AboveClean || l.TrueLabelHelps)) AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(l.Verdict)}[/]");
        if (report.BlackBoxQueries is { } queries) AnsiConsole.WriteLine($"Black-box model: {queries:N0} images scored (queries).");
        foreach (var w in report.Warnings) AnsiConsole.MarkupLine($"[red]WARNING:[/] {Markup.Escape(w)}");
    }
}

/// <summary>Transfer results on the console: each rate with its Wilson 95% interval and its denominator n.</summary>
internal static class TransferOutput
{
    public static void Print(TransferReport report)
    {
        var sources = report.Rows.Select(r => r.Source).Distinct().ToList();
        var targets = report.Rows.Select(r => r.Target).Distinct().ToList();
        foreach (var g in report.Rows.GroupBy(r => (r.Method, r.Epsilon)))
            foreach (var (title, pick, count, n) in new (string, Func<TransferRow, double>, Func<TransferRow, int>, string)[]
                     {
                         ("transfer rate", r => r.TransferRate, r => r.SourceFooled, "n = examples that fooled the source"),
                         ("error rate", r => r.ErrorRate, r => r.Count, "n = test images"),
                     })
            {
                var table = new Table().Title(Markup.Escape($"{g.Key.Method}, eps {g.Key.Epsilon.ToString(CultureInfo.InvariantCulture)}: {title} % [{Wilson.Name}] (n); rows: source, columns: target; {n}"))
                    .AddColumn("source");
                foreach (var t in targets) table.AddColumn(Markup.Escape(t));
                foreach (var s in sources)
                    table.AddRow(new[] { Markup.Escape(s) }.Concat(targets.Select(t => g.FirstOrDefault(r => r.Source == s && r.Target == t) is { } r
                        ? Markup.Escape($"{Wilson.Format(pick(r), count(r))} ({count(r)})") : "-")).ToArray());
                AnsiConsole.Write(table);
            }
    }
}

/// <summary>An IProgress that reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}

/// <summary>
/// Progress as plain lines, for output that is not a terminal: "training: step 120/600 (20%), epoch 1/3, loss 0.532,
/// elapsed 0:12, ETA 0:48". A line is written whenever another tenth of the work is done or
/// <see cref="Interval"/> has passed since the last one, and once at the end.
/// </summary>
internal sealed class PlainProgress(string title, string unit, TextWriter writer, Func<TimeSpan>? clock = null)
{
    /// <summary>Longest time between two lines while work goes on.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(15);

    private readonly Func<TimeSpan> clock = clock ?? StartClock();
    private TimeSpan lastLine = TimeSpan.Zero;
    private int lastTenth;
    private double done, total;
    private string? description;
    private bool finished;

    public void Report(double done, double total, string? description)
    {
        (this.done, this.total) = (done, total);
        if (description is not null) this.description = description;
        if (total <= 0) return;
        int tenth = (int)Math.Floor(Math.Clamp(done / total, 0, 1) * 10);
        var now = clock();
        if (done <= 0 || (tenth <= lastTenth && now - lastLine < Interval)) return;
        lastTenth = Math.Max(lastTenth, tenth);
        lastLine = now;
        writer.WriteLine(Line(done, total, now));
        if (done >= total) finished = true;
    }

    /// <summary>Writes the last line (100%) unless it was written.</summary>
    public void Finish()
    {
        if (finished || total <= 0) return;
        finished = true;
        writer.WriteLine(Line(total, total, clock()));
    }

    private string Line(double done, double total, TimeSpan elapsed)
    {
        // The description carries the details (epoch, loss); it starts with the title when the caller repeats it.
        string details = description is { } d ? (d.StartsWith(title + ": ", StringComparison.Ordinal) ? d[(title.Length + 2)..] : d) : "";
        string eta = done >= total ? "done" : done > 0 ? "ETA " + Clock(TimeSpan.FromSeconds(elapsed.TotalSeconds * (total - done) / done)) : "ETA -";
        return string.Create(CultureInfo.InvariantCulture,
            $"{title}: {unit} {done:0}/{total:0} ({done / total * 100:F0}%){(details.Length > 0 ? ", " + details : "")}, elapsed {Clock(elapsed)}, {eta}");
    }

    private static Func<TimeSpan> StartClock()
    {
        var watch = System.Diagnostics.Stopwatch.StartNew();
        return () => watch.Elapsed;
    }

    /// <summary>m:ss, or h:mm:ss from an hour on.</summary>
    public static string Clock(TimeSpan t) => t.TotalHours >= 1
        ? string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalHours}:{t.Minutes:D2}:{t.Seconds:D2}")
        : string.Create(CultureInfo.InvariantCulture, $"{(int)t.TotalMinutes}:{t.Seconds:D2}");
}
