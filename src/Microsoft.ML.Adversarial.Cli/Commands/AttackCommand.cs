using System.CommandLine;
using Microsoft.ML.Adversarial.Data;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary><c>advml attack</c>: writes adversarial examples of a data split as PNG class folders or IDX files.</summary>
internal static class AttackCommand
{
    private static readonly Option<string> ModelPath = new("--model") { Description = "Model file (.advml) to attack", Required = true };
    private static readonly Option<string> Method = new("--method") { Description = "Attack method", DefaultValueFactory = _ => "step-ll" };
    private static readonly Option<double> Epsilon = new("--epsilon") { Description = "Perturbation size in pixel values [0, 255]", DefaultValueFactory = _ => 16 };
    private static readonly Option<int?> Count = new("--count") { Description = "Images to attack (class-balanced); default 1000", DefaultValueFactory = _ => 1000 };
    private static readonly Option<string> Split = new("--split") { Description = "test or train", DefaultValueFactory = _ => "test" };
    private static readonly Option<string> Output = new("--output", "-o") { Description = "Folder to write", Required = true };
    private static readonly Option<string> Format = new("--format") { Description = "png (one folder per class) or idx (images + labels, ubyte)", DefaultValueFactory = _ => "png" };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("attack", "Write adversarial examples against a model as PNG folders or IDX files");
        foreach (var o in new Option[] { ModelPath, Method, Epsilon, Count, Split, Output, Format, Shared.Seed, Shared.Device, Shared.BatchSize }) c.Options.Add(o);
        Shared.AddData(c);
        c.SetAction((p, ct) => Task.FromResult(Run(p, ct)));
        return c;
    }

    private static int Run(ParseResult p, CancellationToken ct)
    {
        string method = Shared.Methods(p.GetValue(Method)!)[0];
        double eps = Shared.Epsilons(p.GetValue(Epsilon).ToString(System.Globalization.CultureInfo.InvariantCulture))[0];
        string format = p.GetValue(Format)!.ToLowerInvariant();
        if (format is not ("png" or "idx")) throw new CliException($"--format '{format}': use png or idx.");
        string split = p.GetValue(Split)!.ToLowerInvariant();
        if (split is not ("test" or "train")) throw new CliException($"--split '{split}': use test or train.");
        string output = p.GetValue(Output)!;
        Shared.EnsureWritable(output, isFolder: true);
        var device = Shared.ParseDevice(p);
        var (model, description) = Shared.LoadModel(p.GetValue(ModelPath)!, device);
        var data = Shared.LoadSplitFor(p, split == "train", p.GetValue(Count), description, p.GetValue(ModelPath)!);

        var attack = AttackRegistry.Create(method, new AttackOptions { Epsilon = eps, Seed = p.GetValue(Shared.Seed), InputRange = description.InputRangeOrDefault });
        int n = data.RowCount, size = description.Channels * description.Height * description.Width, batch = p.GetValue(Shared.BatchSize);
        var pixels = new float[(long)n * size];
        var labels = new uint[n];
        Shared.WithProgress($"{method} eps {eps}", report =>
        {
            for (int start = 0; start < n; start += batch)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                int count = Math.Min(batch, n - start);
                var (x, y) = data.ToTensors(start, count, device);
                attack.Generate(model, x, y).cpu().contiguous().data<float>().CopyTo(pixels.AsSpan(start * size, count * size));
                for (int i = 0; i < count; i++) labels[start + i] = data.GetLabel(start + i);
                report(start + count, n, null);
            }
            return 0;
        });
        var adversarial = new ImageSetDataView(ImageSet.FromFloats(pixels, labels, data.ClassNames, data.ImageShape));
        if (format == "png")
        {
            int written = ImageFolder.Save(adversarial, output);
            AnsiConsole.MarkupLine($"Wrote {written} PNG images to [bold]{Markup.Escape(output)}[/] (one folder per class).");
        }
        else
        {
            var bytes = new byte[pixels.Length];
            for (long i = 0; i < pixels.LongLength; i++) bytes[i] = (byte)Math.Clamp(MathF.Round(pixels[i] * 255f), 0, 255);
            var dims = description.Channels == 1 ? new[] { n, description.Height, description.Width } : new[] { n, description.Channels, description.Height, description.Width };
            IdxFile.Write(Path.Combine(output, "images-idx-ubyte"), dims, bytes);
            IdxFile.Write(Path.Combine(output, "labels-idx1-ubyte"), new[] { n }, labels.Select(l => (byte)l).ToArray());
            AnsiConsole.MarkupLine($"Wrote {n} images and labels as IDX to [bold]{Markup.Escape(output)}[/].");
        }
        return 0;
    }
}
