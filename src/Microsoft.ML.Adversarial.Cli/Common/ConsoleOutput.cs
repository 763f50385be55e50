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
    /// <summary>Runs <paramref name="work"/> with a progress bar; the callback reports (done, total, description).</summary>
    public static T WithProgress<T>(string title, Func<Action<double, double, string?>, T> work)
    {
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
    public static TrainedModel TrainWithProgress(ModelSpec spec, ImageSet data, AdversarialTrainingOptions options, CheckpointOptions? checkpoints,
        torch.Device device, CancellationToken ct, string title = "training")
    {
        var trainer = new AdversarialTrainer(options, checkpoints);
        long total = options.MaxSteps ?? options.Epochs * trainer.StepsPerEpoch(data.RowCount);
        return WithProgress(title, report =>
        {
            var progress = new InlineProgress<TrainingProgress>(t =>
                report(t.Step, t.TotalSteps, string.Create(CultureInfo.InvariantCulture, $"{title}: loss {t.Loss:F3}, {t.ExamplesPerSecond:F0} img/s")));
            report(0, total, null);
            return trainer.TrainNew(spec, data, device, progress, ct);
        });
    }

    public static void Print(RobustnessReport report)
    {
        var table = new Table().Title(Markup.Escape(report.Model)).AddColumns("method", "eps", "top-1", "top-5", "adv/clean");
        foreach (var r in report.Rows)
            table.AddRow(r.Method, r.Method == "clean" ? "-" : r.Epsilon.ToString(CultureInfo.InvariantCulture),
                $"{r.Top1 * 100:F1} ± {r.Top1Ci95 * 100:F1}", $"{r.Top5 * 100:F1} ± {r.Top5Ci95 * 100:F1}", r.AccuracyRatio.ToString("F3", CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
        foreach (var l in report.LabelLeaks.Where(l => l.AboveClean || l.TrueLabelHelps)) AnsiConsole.MarkupLine($"[yellow]{Markup.Escape(l.Verdict)}[/]");
        if (report.BlackBoxQueries is { } queries) AnsiConsole.WriteLine($"Black-box model: {queries:N0} images scored (queries).");
        foreach (var w in report.Warnings) AnsiConsole.MarkupLine($"[red]WARNING:[/] {Markup.Escape(w)}");
    }
}

/// <summary>An IProgress that reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
