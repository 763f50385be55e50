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
        Description = "resnet18, resnet34, resnet50, resnet101, vgg11, vgg11_bn, vgg13, vgg16, vgg16_bn, vgg19, mobilenet_v2, googlenet, alexnet, inception_v3 (or smallcnn, smallresnet)",
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

    internal static InputRange ParseRange(string text)
    {
        string t = text.Trim();
        switch (t.ToLowerInvariant())
        {
            case "unit": return InputRange.UnitInterval;
            case "symmetric": return InputRange.SymmetricUnit;
            case "pixels": return InputRange.Pixels;
            case "imagenet": return InputRange.ImageNet;
        }
        var parts = t.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .Select(part => part.Split('=', 2, StringSplitOptions.TrimEntries)).ToList();
        float[]? Values(string key) => parts.FirstOrDefault(kv => kv.Length == 2 && kv[0].Equals(key, StringComparison.OrdinalIgnoreCase)) is { } kv
            ? kv[1].Split(',', StringSplitOptions.TrimEntries).Select(v => float.Parse(v, CultureInfo.InvariantCulture)).ToArray() : null;
        try
        {
            if (Values("mean") is { } mean && Values("std") is { } std && parts.Count == 2) return InputRange.Normalized(mean, std);
        }
        catch (Exception e) when (e is FormatException or ArgumentException)
        {
            throw new CliException($"--range '{text}': {e.Message}");
        }
        throw new CliException($"--range '{text}' is not unit, symmetric, pixels, imagenet or mean=M1,M2,M3;std=S1,S2,S3.");
    }

    internal static IReadOnlyList<string> ParseClasses(string? list, string? file)
    {
        IReadOnlyList<string> names;
        if ((list is null) == (file is null)) throw new CliException("Give the class names with --classes A,B,C or --classes-file FILE (one of them).");
        if (file is not null)
        {
            if (!File.Exists(file)) throw new CliException($"--classes-file: '{file}' does not exist.");
            names = File.ReadAllLines(file).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        }
        else names = list!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (names.Count < 2) throw new CliException($"--classes gives {names.Count} name(s); a classifier needs at least 2, in the network's output order.");
        if (names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1) is { } dup)
            throw new CliException($"--classes names '{dup.Key}' {dup.Count()} times; each class needs its own name.");
        return names;
    }

    private static int Run(ParseResult p)
    {
        string output = p.GetValue(Output)!, weights = p.GetValue(Weights)!;
        var classes = ParseClasses(p.GetValue(Classes), p.GetValue(ClassesFile));
        var range = ParseRange(p.GetValue(Range)!);
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
