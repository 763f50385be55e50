using System.CommandLine;
// (System.CommandLine.Command is written in full: inside Microsoft.ML.*, ML.NET's namespace Microsoft.ML.Command would hide it.)
using System.Globalization;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>Options several commands take, and the parsing of their values (checked before any long step).</summary>
internal static class CommonOptions
{
    public static readonly Option<string?> Data = new("--data")
    {
        Description = "Image folder root with train/ and test/ subfolders of class folders; default: Fashion-MNIST (Debian's dataset-fashion-mnist or FASHION_MNIST_DIR)",
    };

    public static readonly Option<int> ImageSize = InRange(new("--image-size") { Description = "Side images are resized to (image folders only)", DefaultValueFactory = _ => Microsoft.ML.Adversarial.Data.ImageFolderOptions.DefaultSize }, 8, 1024);

    public static readonly Option<bool> Grayscale = new("--grayscale") { Description = "Convert image-folder images to one grey channel" };

    public static readonly Option<string> Device = new("--device") { Description = "cpu, cuda or cuda:N", DefaultValueFactory = _ => "cpu" };

    public static readonly Option<string> Precision = WithChoices(new Option<string>("--precision")
    {
        Description = "fp32 (default), bf16 or fp16: bf16/fp16 run a reduced-precision copy of the network (fp32 master weights), " +
                      "faster on CPUs with AVX512_BF16 and on GPUs; results differ within the bounds in docs/performance.md",
        DefaultValueFactory = _ => "fp32",
    }, "fp32", "bf16", "fp16");

    private static Option<string> WithChoices(Option<string> option, params string[] choices)
    {
        option.AcceptOnlyFromAmong(choices);
        return option;
    }

    public static readonly Option<string> ComputePath = WithChoices(new Option<string>("--compute")
    {
        Description = "checked (default): the fast path (channels-last, BatchNorm folded), checked against the plain path on " +
                      "the first batch of each shape, with a warning and a fallback where they disagree; plain: the network's own " +
                      "forward pass (NCHW, unfolded), the reference; unchecked: the fast path without the check",
        DefaultValueFactory = _ => "checked",
    }, "checked", "plain", "unchecked");

    /// <summary>How the models run: --precision and --compute (ComputeOptions' defaults: channels-last, BatchNorm folded, checked).</summary>
    public static ComputeOptions Compute(ParseResult p)
    {
        var options = new ComputeOptions { Precision = ComputeOptions.ParsePrecision(p.GetValue(Precision)!) };
        return p.GetValue(ComputePath) switch
        {
            "plain" => options with { ChannelsLast = false, FoldBatchNorm = false },
            "unchecked" => options with { VerifyFastPath = false },
            _ => options,
        };
    }

    public static readonly Option<int?> Eot = Positive(new("--eot")
    {
        Description = "Expectation over Transformation: each input gradient of the gradient attacks is the mean of N passes, " +
                      "for models that draw random numbers (random input transforms, noisy layers); AutoAttack's 'rand' version uses 20",
    });

    public static readonly Option<string[]> Bpda = new("--bpda")
    {
        Description = "BPDA: a layer of the model, by name, whose backward pass the gradient attacks take as the identity " +
                      "(a rounding or quantising input layer); repeatable. An unknown name is refused listing the model's layers",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>--eot and --bpda as the shared attack settings they stand for.</summary>
    public static (int EotSamples, string[] BpdaLayers) GradientSettings(ParseResult p) => (p.GetValue(Eot) ?? 1, p.GetValue(Bpda) ?? Array.Empty<string>());

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
            if (!InvariantNumbers.TryParse(part, out var e))
                throw new CliException($"Epsilon '{part}' is not a number in [0, 255] (pixel values).");
            if (PixelEpsilon.Problem(e) is { } problem) throw new CliException($"Epsilon '{part}': {problem}");
            if (list.Contains(e)) throw new CliException($"{option} '{text}' lists {part} twice; list each epsilon once.");
            list.Add(e);
        }
        if (list.Count == 0) throw new CliException($"{option} is empty; give e.g. 2,4,8,16.");
        return list;
    }

    /// <summary>An input range by name (unit, symmetric, pixels, imagenet) or as mean=...;std=... (import's --range, --onnx-range).</summary>
    public static InputRange ParseRange(string text)
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

    /// <summary>Class names in output order from a comma list or a file of one name a line (exactly one of them).</summary>
    public static IReadOnlyList<string> ParseClasses(string? list, string? file)
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
}
