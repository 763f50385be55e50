using System.CommandLine;
// (System.CommandLine.Command is written in full: inside Microsoft.ML.*, ML.NET's namespace Microsoft.ML.Command would hide it.)
using System.Globalization;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.IO;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Spectre.Console;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>A user error: printed as one line, exit code 2.</summary>
internal sealed class CliException(string message) : Exception(OneLine(message))
{
    /// <summary>The first line of a message, without .NET's "(Parameter 'x')" suffix.</summary>
    public static string OneLine(string message)
    {
        string first = message.Split('\n', 2)[0].TrimEnd();
        int p = first.LastIndexOf(" (Parameter '", StringComparison.Ordinal);
        return p > 0 ? first[..p] : first;
    }
}

/// <summary>Options shared by several commands, and the helpers that read them.</summary>
internal static class Shared
{
    public static readonly Option<string?> Data = new("--data")
    {
        Description = "Image folder root with train/ and test/ subfolders of class folders; default: Fashion-MNIST (Debian's dataset-fashion-mnist or FASHION_MNIST_DIR)",
    };
    public static readonly Option<int> ImageSize = InRange(new("--image-size") { Description = "Side images are resized to (image folders only)", DefaultValueFactory = _ => 32 }, 8, 1024);
    public static readonly Option<bool> Grayscale = new("--grayscale") { Description = "Convert image-folder images to one grey channel" };
    public static readonly Option<string> Device = new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };
    public static readonly Option<int> Seed = new("--seed") { Description = "Seed of everything random", DefaultValueFactory = _ => 1 };
    public static readonly Option<int> BatchSize = InRange(new("--batch-size") { Description = "Images per attack/evaluation batch", DefaultValueFactory = _ => 256 }, 1, 1 << 20);

    /// <summary>
    /// The one check of an integer option's value, run while parsing: a bad value fails before anything is loaded,
    /// with the option's name and value.
    /// </summary>
    public static Option<int> InRange(Option<int> option, int min, int max)
    {
        option.Validators.Add(r =>
        {
            int v = r.GetValueOrDefault<int>();
            if (v < min || v > max) r.AddError($"{option.Name} {v} is out of range; use {min} to {max}.");
        });
        return option;
    }

    /// <summary>Same for an optional count: absent means "all", a given value must be at least 1.</summary>
    public static Option<int?> Positive(Option<int?> option)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int?>() is int v && v < 1) r.AddError($"{option.Name} {v} is out of range; give at least 1 (or leave it out for all).");
        });
        return option;
    }

    /// <summary>A report file name: .json or .csv (checked while parsing, not after the run).</summary>
    public static Option<string?> ReportFile(Option<string?> option)
    {
        option.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } path && ReportFormat(path) is null)
                r.AddError($"{option.Name} '{path}': use a .json or .csv file name.");
        });
        return option;
    }

    public static string? ReportFormat(string path) => Path.GetExtension(path).ToLowerInvariant() switch
    {
        ".json" => "json",
        ".csv" => "csv",
        _ => null,
    };

    public static void AddData(System.CommandLine.Command c)
    {
        c.Options.Add(Data);
        c.Options.Add(ImageSize);
        c.Options.Add(Grayscale);
    }

    /// <summary>Loads one split: Fashion-MNIST (stratified subset) or an image folder's train/ or test/ folder.</summary>
    public static ImageSet LoadSplit(ParseResult p, bool train, int? count)
    {
        string? folder = p.GetValue(Data);
        if (folder is null)
        {
            try
            {
                return FashionMnist.Load(new FashionMnistOptions
                {
                    Folder = FashionMnist.ResolveDefaultFolder(),
                    Split = train ? FashionMnistSplit.Train : FashionMnistSplit.Test, Count = count, Subset = SubsetMode.Stratified,
                });
            }
            catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException)
            {
                throw new CliException(e.Message + (Environment.GetEnvironmentVariable(FashionMnist.FolderVariable) is { Length: > 0 } env
                    ? $" {FashionMnist.FolderVariable} is set to '{env}': point it at the folder with the four IDX files, unset it, or pass --data FOLDER."
                    : " Install it (bash build/setup.sh, or apt-get install dataset-fashion-mnist) or pass --data FOLDER."));
            }
        }
        string split = Path.Combine(folder, train ? "train" : "test");
        if (!Directory.Exists(split))
            throw new CliException($"'{split}' does not exist. --data expects a folder with train/ and test/ subfolders, each holding one folder per class.");
        int size = p.GetValue(ImageSize);
        var ml = new MLContext(seed: p.GetValue(Seed));
        var view = ml.Data.LoadFromImageFolder(new ImageFolderOptions { Folder = split, Height = size, Width = size, Grayscale = p.GetValue(Grayscale) });
        return ImageSetReader.Read(view).Stratified(count);
    }

    /// <summary>
    /// Loads a split for a model: the images must have the model's shape, and their classes are renumbered to the
    /// model's by name (<see cref="ClassMatch"/>), so a folder's order never decides what a label means.
    /// </summary>
    public static ImageSet LoadSplitFor(ParseResult p, bool train, int? count, ModelDescription model, string modelName)
    {
        var data = LoadSplit(p, train, count);
        if (data.ImageShape != (model.Channels, model.Height, model.Width))
            throw new CliException($"The data has {data.ImageShape} images; model '{modelName}' takes ({model.Channels}, {model.Height}, {model.Width}). Use --image-size/--grayscale to match.");
        if (model.ClassNames is not { } classes) return data;
        try { return data.AlignTo(classes, "the data", $"model '{modelName}'"); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    public static torch.Device ParseDevice(ParseResult p)
    {
        try { return DeviceParser.Parse(p.GetValue(Device) ?? "cpu", fallbackToCpu: false); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    /// <summary>A comma list of methods, as the registry spells them; unknown or repeated names are errors.</summary>
    public static IReadOnlyList<string> Methods(string text, string option = "--methods")
    {
        var list = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (list.Length == 0) throw new CliException($"{option} is empty; name at least one method, e.g. fgsm,step-ll.");
        var methods = new List<string>();
        foreach (var m in list)
        {
            string name = AttackRegistry.Names.FirstOrDefault(n => string.Equals(n, m, StringComparison.OrdinalIgnoreCase))
                ?? throw new CliException($"Unknown method '{m}'. Known: {string.Join(", ", AttackRegistry.Names)}.");
            if (methods.Contains(name)) throw new CliException($"{option} '{text}' names {name} twice; list each method once.");
            methods.Add(name);
        }
        return methods;
    }

    public static IReadOnlyList<double> Epsilons(string text, string option = "--epsilons")
    {
        var list = new List<double>();
        foreach (var part in text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out var e) || !double.IsFinite(e) || e < 0 || e > 255)
                throw new CliException($"Epsilon '{part}' is not a number in [0, 255] (pixel values).");
            if (list.Contains(e)) throw new CliException($"{option} '{text}' lists {part} twice; list each epsilon once.");
            list.Add(e);
        }
        if (list.Count == 0) throw new CliException($"{option} is empty; give e.g. 2,4,8,16.");
        return list;
    }

    /// <summary>
    /// Fails before a long run if <paramref name="bytes"/> bytes cannot be written where the output goes (a folder,
    /// or a file's folder): a real probe of that size, so a full disk is found now and not after the work.
    /// </summary>
    public static void EnsureWritable(string path, bool isFolder, long bytes = AtomicFile.DefaultProbeBytes, string option = "--output")
    {
        string folder = isFolder ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        try
        {
            if (!isFolder && Directory.Exists(path)) throw new IOException($"'{path}' is a folder; a file name is expected");
            AtomicFile.EnsureWritableFolder(folder, bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The probe's own failure (a full disk) comes wrapped; say how much was asked for.
            string reason = e.InnerException is IOException inner ? $"{CliException.OneLine(inner.Message).TrimEnd('.')}; {bytes:N0} bytes were probed" : CliException.OneLine(e.Message).TrimEnd('.');
            throw new CliException($"{option} '{path}': cannot write to '{Path.GetFullPath(folder)}' ({reason}). Choose another {option}, or free some space if the disk is full.");
        }
    }

    /// <summary>The highest folder on the way to <paramref name="folder"/> that does not exist yet (null when it exists).</summary>
    public static string? FirstMissingFolder(string folder)
    {
        string? missing = null;
        for (var d = new DirectoryInfo(Path.GetFullPath(folder)); d is not null && !d.Exists && !File.Exists(d.FullName); d = d.Parent) missing = d.FullName;
        return missing;
    }

    /// <summary>Removes a folder a failed command created (with what it wrote there), so a failure leaves nothing behind.</summary>
    public static void RemoveCreatedFolder(string? folder)
    {
        if (folder is null || !Directory.Exists(folder)) return;
        try { Directory.Delete(folder, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Console.Error.WriteLine($"advml: could not remove '{folder}' ({e.Message})."); }
    }

    /// <summary>The full path with symbolic links resolved, so two spellings of one folder compare equal.</summary>
    public static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string current = Path.GetPathRoot(full)!;
        foreach (var part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            var info = new DirectoryInfo(current);
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target) current = Path.GetFullPath(target.FullName);
        }
        return Path.TrimEndingDirectorySeparator(current);
    }

    /// <summary>Whether <paramref name="inner"/> is <paramref name="outer"/> or lies inside it (both real paths).</summary>
    public static bool IsSameOrInside(string inner, string outer)
    {
        var comparison = OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;
        string prefix = Path.EndsInDirectorySeparator(outer) ? outer : outer + Path.DirectorySeparatorChar;
        return string.Equals(inner, outer, comparison) || inner.StartsWith(prefix, comparison);
    }

    public static (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) LoadModel(string path, torch.Device device)
    {
        (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) loaded;
        try { loaded = ModelIO.Load(path, device); }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException)
        {
            throw new CliException(e.Message);
        }
        // The CLI's readers give pixels in [0, 1]; a model on another range (an imported ImageNet network) is fed through
        // PixelRangeAdapter, which maps [0, 1] to its range per channel, so attacks on [0, 1] are its own attacks.
        if (loaded.Description.InputRangeOrDefault.Description != InputRange.UnitInterval.Description)
            return (new PixelRangeAdapter(loaded.Model, loaded.Description.InputRangeOrDefault), loaded.Description with { InputRange = InputRange.UnitInterval });
        return loaded;
    }

    /// <summary>Writes a report as JSON or CSV by the file's extension (atomically).</summary>
    public static void WriteResults(string path, string json, string csv)
    {
        string text = ReportFormat(path) switch
        {
            "json" => json,
            "csv" => csv,
            _ => throw new CliException($"--output '{path}': use a .json or .csv file name."),
        };
        WriteAtomically(path, text);
        AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(path)}[/]");
    }

    public static void WriteAtomically(string path, string text) => AtomicFile.WriteAllText(path, text);

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
        foreach (var w in report.Warnings) AnsiConsole.MarkupLine($"[red]WARNING:[/] {Markup.Escape(w)}");
    }
}

/// <summary>An IProgress that reports on the calling thread (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class InlineProgress<T>(Action<T> report) : IProgress<T>
{
    public void Report(T value) => report(value);
}
