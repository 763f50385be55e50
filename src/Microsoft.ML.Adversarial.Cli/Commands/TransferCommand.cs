using System.CommandLine;
using Microsoft.ML.Adversarial.Evaluation;
using Spectre.Console;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary><c>advml transfer</c>: transfer-rate and error-rate matrices between models (Tables 4 and 6).</summary>
internal static class TransferCommand
{
    private static readonly Option<string> Models = new("--models") { Description = "Comma list of model files, or NAME=PATH pairs", Required = true };
    private static readonly Option<string> Methods = new("--methods") { Description = "Comma list of methods", DefaultValueFactory = _ => "fgsm,iter-basic,iter-ll" };
    private static readonly Option<string> Epsilons = new("--epsilons") { Description = "Comma list, pixel values", DefaultValueFactory = _ => "16" };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("transfer", "Transfer of adversarial examples between models: transfer rate and error rate matrices");
        foreach (var o in new Option[] { Models, Methods, Epsilons, EvaluateCommand.Count, EvaluateCommand.Output, Shared.Seed, Shared.Device, Shared.BatchSize }) c.Options.Add(o);
        Shared.AddData(c);
        c.SetAction((p, ct) => Task.FromResult(Run(p, ct)));
        return c;
    }

    private static int Run(ParseResult p, CancellationToken ct) => EvaluateCommand.RemovingCreatedFolderOnFailure(p, () => Transfer(p, ct));

    private static int Transfer(ParseResult p, CancellationToken ct)
    {
        var methods = Shared.Methods(p.GetValue(Methods)!);
        var epsilons = Shared.Epsilons(p.GetValue(Epsilons)!);
        if (p.GetValue(EvaluateCommand.Output) is { } o) Shared.EnsureWritable(o, isFolder: false);
        var device = Shared.ParseDevice(p);
        var models = new Dictionary<string, torch.nn.Module<torch.Tensor, torch.Tensor>>();
        (int, int, int)? shape = null;
        foreach (var entry in p.GetValue(Models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = entry.Split('=', 2);
            string path = parts[^1], name = parts.Length == 2 ? parts[0] : Path.GetFileNameWithoutExtension(path);
            if (models.ContainsKey(name)) throw new CliException($"Two models are named '{name}'; use NAME=PATH to tell them apart.");
            var (model, d) = Shared.LoadModel(path, device);
            if (shape is not null && shape != (d.Channels, d.Height, d.Width)) throw new CliException($"Model '{name}' takes other images than the first model.");
            shape = (d.Channels, d.Height, d.Width);
            models[name] = model;
        }
        if (models.Count < 2) throw new CliException("--models needs at least two models.");
        var data = Shared.LoadSplit(p, train: false, p.GetValue(EvaluateCommand.Count));
        var report = Shared.WithProgress("transfer", progress => new TransferEvaluator(new TransferOptions
        {
            Methods = methods, Epsilons = epsilons, BatchSize = p.GetValue(Shared.BatchSize), Seed = p.GetValue(Shared.Seed), CancellationToken = ct,
            Progress = new InlineProgress<EvaluationProgress>(e => progress(e.Done, e.Total, e.Stage)),
        }).Evaluate(models, models, data, device));
        AnsiConsole.WriteLine(report.ToString());
        if (p.GetValue(EvaluateCommand.Output) is { } output) Shared.WriteResults(output, report.ToJson(), report.ToCsv());
        return 0;
    }
}
