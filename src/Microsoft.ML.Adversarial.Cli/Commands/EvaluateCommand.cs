using System.CommandLine;
using Microsoft.ML.Adversarial.Evaluation;
using Spectre.Console;
using TorchSharp;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary><c>advml evaluate</c>: robustness table of one model.</summary>
internal static class EvaluateCommand
{
    private static readonly Option<string> ModelPath = new("--model") { Description = "Model file (.advml), or an .onnx model (black box: square, autoattack)", Required = true };
    internal static readonly Option<string> Methods = new("--methods") { Description = "Comma list of methods", DefaultValueFactory = _ => "step-ll,fgsm,iter-basic,iter-ll" };
    internal static readonly Option<string> Epsilons = new("--epsilons") { Description = "Comma list, pixel values", DefaultValueFactory = _ => "2,4,8,16" };
    internal static readonly Option<int?> Count = CommonOptions.Positive(new("--count") { Description = "Test images (class-balanced)", DefaultValueFactory = _ => 1000 });
    internal static readonly Option<string?> Output = CommonOptions.ReportFile(new("--output", "-o") { Description = "Write the results to a .json or .csv file" });
    internal static readonly Option<string[]> MethodOption = new(MethodSettings.OptionName)
    {
        Description = "A method's budget or setting, METHOD.SETTING=VALUE, repeatable: square.queries=1000, apgd-ce.iterations=50, apgd-ce.restarts=5, autoattack.square-queries=500, fab-t.iterations=50 (docs/cli.md lists them)",
        AllowMultipleArgumentsPerToken = false,
    };
    internal static readonly Option<string> MaskingChecksOption = new("--masking-checks")
    {
        Description = "Checks for gradient masking: results (default: zero gradients, a random model, and the comparisons the evaluated methods allow), " +
                      "full (also runs FGSM, 20-step PGD, random noise and Square at each epsilon and PGD at eps 128: about one Square run more), off",
        DefaultValueFactory = _ => "results",
    };
    internal static readonly Option<bool> FiguresOption = new("--figures")
    {
        Description = "Also write the figures (PNG, as reproduce draws them: evaluate accuracy-vs-epsilon.png, transfer transfer-vs-epsilon.png) into --output's folder, or the current folder without --output",
    };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("evaluate", "Accuracy of a model on clean and adversarial test images, per method and epsilon");
        foreach (var o in new Option[] { ModelPath, Methods, Epsilons, Count, Output, MethodOption, FiguresOption, MaskingChecksOption, CommonOptions.Eot, CommonOptions.Bpda, CommonOptions.Seed, CommonOptions.Device, CommonOptions.BatchSize, CommonOptions.Precision, CommonOptions.ComputePath }) c.Options.Add(o);
        MaskingChecksOption.AcceptOnlyFromAmong("results", "full", "off");
        CommonOptions.AddData(c);
        OnnxModels.AddOptions(c);
        c.SetAction((p, ct) => Task.FromResult(Run(p, ct)));
        return c;
    }

    private static int Run(ParseResult p, CancellationToken ct) => RemovingCreatedFolderOnFailure(p, () => Evaluate(p, ct));

    /// <summary>Runs a command that writes a report to --output; if it fails, a folder it created for the report is removed.</summary>
    internal static int RemovingCreatedFolderOnFailure(ParseResult p, Func<int> run)
    {
        string? created = p.GetValue(Output) is { } o ? OutputFiles.FirstMissingFolder(Path.GetDirectoryName(Path.GetFullPath(o))!) : null;
        try
        {
            return run();
        }
        catch
        {
            OutputFiles.RemoveCreatedFolder(created);
            throw;
        }
    }

    private static int Evaluate(ParseResult p, CancellationToken ct)
    {
        var methods = CommonOptions.Methods(p.GetValue(Methods)!);
        var epsilons = CommonOptions.Epsilons(p.GetValue(Epsilons)!);
        var methodOptions = MethodSettings.Parse(p.GetValue(MethodOption) ?? Array.Empty<string>(), methods);
        var (eot, bpda) = CommonOptions.GradientSettings(p);
        if (p.GetValue(Output) is { } o) OutputFiles.EnsureWritable(o, isFolder: false);
        string? figures = FigureFolder(p);
        var device = CommonOptions.ParseDevice(p);
        string path = p.GetValue(ModelPath)!;
        var (model, description) = CliData.LoadModel(path, device, p);
        var data = CliData.OpenSplitFor(p, train: false, p.GetValue(Count), description, path);
        NativePreflight.Check(p, path, description, data.RowCount, device);
        var report = ConsoleOutput.WithProgress("evaluating", progress =>
        {
            var options = new RobustnessOptions
            {
                Methods = methods, Epsilons = epsilons, InputRange = description.InputRangeOrDefault, BatchSize = p.GetValue(CommonOptions.BatchSize), Seed = p.GetValue(CommonOptions.Seed), CancellationToken = ct,
                Compute = CommonOptions.Compute(p),
                Progress = new InlineProgress<EvaluationProgress>(e => progress(e.Done, e.Total, null)),
                MaskingChecks = p.GetValue(MaskingChecksOption) switch { "full" => GradientMaskingChecks.Full, "off" => GradientMaskingChecks.Off, _ => GradientMaskingChecks.FromResults },
                EotSamples = eot,
                BpdaLayers = bpda,
            };
            foreach (var (method, settings) in methodOptions) options.MethodOptions[method] = settings;
            return new RobustnessEvaluator(options).Evaluate(model, data, Path.GetFileNameWithoutExtension(path), device);
        });
        ConsoleOutput.Print(report);
        if (p.GetValue(Output) is { } output) OutputFiles.WriteResults(output, report.ToJson(), report.ToCsv());
        if (figures is not null) WriteFigure(Experiments.Figures.AccuracyChart(report), figures, "accuracy-vs-epsilon.png");
        return 0;
    }

    /// <summary>With --figures: the folder the figures go to (--output's folder, or the current one), probed now; else null.</summary>
    internal static string? FigureFolder(ParseResult p)
    {
        if (!p.GetValue(FiguresOption)) return null;
        string folder = p.GetValue(Output) is { } o ? Path.GetDirectoryName(Path.GetFullPath(o))! : Directory.GetCurrentDirectory();
        OutputFiles.EnsureWritable(folder, isFolder: true, option: "--figures");
        return folder;
    }

    internal static void WriteFigure(Experiments.LineChart chart, string folder, string name)
    {
        Directory.CreateDirectory(folder);
        Experiments.Figures.Save(chart, folder, name);
        AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(Path.Combine(folder, name))}[/]");
    }
}
