using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Adversarial.Models;
using Spectre.Console;
using TorchSharp;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary>
/// <c>advml import</c>: a PyTorch state dict of a torchvision architecture (or of one of the library's) becomes a model
/// file that train's siblings (attack, evaluate, transfer) take. Every name and shape is checked before anything is written.
/// </summary>
internal static class ImportCommand
{
    private static readonly Option<string> Output = new("--output", "-o") { Description = "Model file to write (.advml)", Required = true };
    private static readonly Option<string> Arch = new("--arch")
    {
        Description = $"The network the weights are for, by torchvision's name: {string.Join(", ", TorchVisionModels.ByTorchVisionName.Keys)} " +
                      $"(or {string.Join(", ", Architectures.Rebuildable.Where(d => d.TorchVisionName is null).Select(d => d.Name))})",
        Required = true,
    };
    private static readonly Option<string> Weights = new("--weights") { Description = "torch.save(model.state_dict(), path) file (or TorchSharp weights)", Required = true };
    private static readonly Option<string?> Classes = new("--classes") { Description = "Class names in output order, as a comma list" };
    private static readonly Option<string?> ClassesFile = new("--classes-file") { Description = "Class names in output order, one a line (instead of --classes)" };
    private static readonly Option<int> ImageSize = new("--image-size") { Description = "Side of the square input images", DefaultValueFactory = _ => 224 };
    private static readonly Option<int> Channels = new("--channels") { Description = "Input channels (3 for torchvision's networks)", DefaultValueFactory = _ => 3 };
    private static readonly Option<string> Range = new("--range")
    {
        Description = "Values the network takes: unit ([0, 1]), symmetric ([-1, 1]), pixels ([0, 255]), imagenet (torchvision's mean/std), " +
                      "or mean=M1,M2,M3;std=S1,S2,S3",
        DefaultValueFactory = _ => "imagenet",
    };
    private static readonly Option<double> Rho = new("--rho") { Description = "Width multiplier (smallcnn, smallresnet, inceptionv3 only)", DefaultValueFactory = _ => 1 };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("import", "Turn a PyTorch state dict (torchvision architecture) into a model file the other commands take");
        foreach (var o in new Option[] { Output, Arch, Weights, Classes, ClassesFile, ImageSize, Channels, Range, Rho })
            c.Options.Add(o);
        c.SetAction((p, ct) => Task.FromResult(Run(p)));
        return c;
    }

    private static int Run(ParseResult p)
    {
        string output = p.GetValue(Output)!, weights = p.GetValue(Weights)!;
        var classes = CommonOptions.ParseClasses(p.GetValue(Classes), p.GetValue(ClassesFile));
        var range = CommonOptions.ParseRange(p.GetValue(Range)!);
        int side = p.GetValue(ImageSize), channels = p.GetValue(Channels);
        if (!File.Exists(weights)) throw new CliException($"--weights: '{weights}' does not exist.");
        ModelDescription description;
        try
        {
            var spec = new ModelSpec(ModelSpec.ParseArchitecture(p.GetValue(Arch)!), p.GetValue(Rho));
            description = new ModelDescription(spec, classes.Count, channels, side, side, classes) { InputRange = range };
            description.Validate();
        }
        catch (ArgumentException e) { throw new CliException(e.Message); }
        OutputFiles.EnsureWritable(output, isFolder: false);
        torch.nn.Module<torch.Tensor, torch.Tensor> model;
        try { model = ModelIO.Import(description, weights); }
        catch (InvalidDataException e) { throw new CliException(e.Message); }
        int tensors;
        using (model)
        {
            tensors = ModelIO.ParameterNames(model).Count;
            ModelIO.Save(model, description, output);
        }
        AnsiConsole.MarkupLine(Markup.Escape($"Imported {description.Spec.Architecture} ({tensors} tensors checked by name and shape) " +
            $"for {channels}x{side}x{side} images in {range}, {classes.Count} classes. Saved ") + $"[bold]{Markup.Escape(output)}[/].");
        return 0;
    }
}
