using System.CommandLine;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using Spectre.Console;
using TorchSharp;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary><c>advml transfer</c>: transfer-rate and error-rate matrices between models (Tables 4 and 6).</summary>
internal static class TransferCommand
{
    private static readonly Option<string> Models = new("--models") { Description = "Comma list of model files, or NAME=PATH pairs; .onnx models are targets only (black boxes)", Required = true };
    private static readonly Option<string> Methods = new("--methods") { Description = "Comma list of methods", DefaultValueFactory = _ => "fgsm,iter-basic,iter-ll" };
    private static readonly Option<string> Epsilons = new("--epsilons") { Description = "Comma list, pixel values", DefaultValueFactory = _ => "16" };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("transfer", "Transfer of adversarial examples between models: transfer rate and error rate matrices");
        foreach (var o in new Option[] { Models, Methods, Epsilons, EvaluateCommand.Count, EvaluateCommand.Output, EvaluateCommand.FiguresOption, CommonOptions.Seed, CommonOptions.Device, CommonOptions.BatchSize, CommonOptions.Precision, CommonOptions.ComputePath }) c.Options.Add(o);
        CommonOptions.AddData(c);
        OnnxModels.AddOptions(c);
        c.SetAction((p, ct) => Task.FromResult(Run(p, ct)));
        return c;
    }

    private static int Run(ParseResult p, CancellationToken ct) => EvaluateCommand.RemovingCreatedFolderOnFailure(p, () => Transfer(p, ct));

    private static int Transfer(ParseResult p, CancellationToken ct)
    {
        var methods = CommonOptions.Methods(p.GetValue(Methods)!);
        var epsilons = CommonOptions.Epsilons(p.GetValue(Epsilons)!);
        if (p.GetValue(EvaluateCommand.Output) is { } o) OutputFiles.EnsureWritable(o, isFolder: false);
        string? figures = EvaluateCommand.FigureFolder(p);
        var device = CommonOptions.ParseDevice(p);
        var models = new Dictionary<string, torch.nn.Module<torch.Tensor, torch.Tensor>>();
        (string Name, ModelDescription Description)? first = null;
        foreach (var entry in p.GetValue(Models)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = entry.Split('=', 2);
            string path = parts[^1], name = parts.Length == 2 ? parts[0] : Path.GetFileNameWithoutExtension(path);
            if (models.ContainsKey(name)) throw new CliException($"Two models are named '{name}'; use NAME=PATH to tell them apart.");
            var (model, d) = CliData.LoadModel(path, device, p);
            models[name] = model;
            NativePreflight.Check(p, path, d, p.GetValue(EvaluateCommand.Count) ?? int.MaxValue, device);
            if (first is not { } f)
            {
                first = (name, d);
                continue;
            }
            // One label tensor serves every model, so all must take the same images and order the same classes the same way.
            if ((f.Description.Channels, f.Description.Height, f.Description.Width) != (d.Channels, d.Height, d.Width))
                throw new CliException($"Model '{name}' takes ({d.Channels}, {d.Height}, {d.Width}) images, model '{f.Name}' ({f.Description.Channels}, {f.Description.Height}, {f.Description.Width}); transfer needs models of the same input.");
            if (f.Description.InputRangeOrDefault.Description != d.InputRangeOrDefault.Description)
                throw new CliException($"Model '{name}' takes pixels in {d.InputRangeOrDefault}, model '{f.Name}' in {f.Description.InputRangeOrDefault}; transfer needs models fed the same pixels.");
            // A model that names no classes (an .onnx model without --onnx-classes) takes the others' order; counts must agree.
            if (d.ClassNames is null || f.Description.ClassNames is null)
            {
                if (d.Classes != f.Description.Classes)
                    throw new CliException($"Model '{name}' scores {d.Classes} classes, model '{f.Name}' {f.Description.Classes}; transfer needs the same classes.");
                if (f.Description.ClassNames is null) first = (name, d);
                continue;
            }
            var classes = d.ClassNames;
            var firstClasses = f.Description.ClassNames;
            if (!classes.SequenceEqual(firstClasses))
                throw new CliException($"Model '{name}' has classes {ClassMatch.Show(classes.ToList())}, model '{f.Name}' {ClassMatch.Show(firstClasses.ToList())}; transfer needs the same classes in the same order.");
        }
        if (models.Count < 2 || first is not { } reference) throw new CliException("--models needs at least two models.");
        var range = reference.Description.InputRangeOrDefault;
        var data = CliData.OpenSplitFor(p, train: false, p.GetValue(EvaluateCommand.Count), reference.Description, reference.Name);
        // Black boxes (ONNX models) only score: they are targets, and the models with gradients are the sources.
        var sources = models.Where(m => ScoreFunctionModel.Inside(m.Value) is null).ToDictionary();
        if (sources.Count == 0) throw new CliException("--models has no model with gradients to make adversarial examples on; give at least one .advml model (ONNX models are targets only).");
        var report = ConsoleOutput.WithProgress("transfer", progress => new TransferEvaluator(new TransferOptions
        {
            Methods = methods, Epsilons = epsilons, InputRange = range, BatchSize = p.GetValue(CommonOptions.BatchSize), Seed = p.GetValue(CommonOptions.Seed), CancellationToken = ct,
            Compute = CommonOptions.Compute(p),
            Progress = new InlineProgress<EvaluationProgress>(e => progress(e.Done, e.Total, e.Stage)),
        }).Evaluate(sources, models, data, device));
        TransferOutput.Print(report);
        if (p.GetValue(EvaluateCommand.Output) is { } output) OutputFiles.WriteResults(output, report.ToJson(), report.ToCsv());
        if (figures is not null) EvaluateCommand.WriteFigure(Experiments.Figures.TransferChart(report), figures, "transfer-vs-epsilon.png");
        return 0;
    }
}
