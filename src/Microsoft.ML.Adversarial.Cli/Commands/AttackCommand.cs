using System.CommandLine;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.IO;
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
    private static readonly Option<int?> Count = CommonOptions.Positive(new("--count") { Description = "Images to attack (class-balanced)", DefaultValueFactory = _ => 1000 });
    private static readonly Option<string> Split = new("--split") { Description = "test or train", DefaultValueFactory = _ => "test" };
    private static readonly Option<string> Output = new("--output", "-o") { Description = "Folder to write", Required = true };
    private static readonly Option<string> Format = new("--format") { Description = "png (one folder per class) or idx (images as ubyte; labels as ubyte, or 32-bit integers when a class index passes 255)", DefaultValueFactory = _ => "png" };
    private static readonly Option<bool> Overwrite = new("--overwrite") { Description = "Write into an --output that holds images: an earlier run's (listed in its advml-manifest.json) are replaced, other files are kept and never replaced; never allowed for the input data" };
    private static readonly string[] IdxNames = { "images-idx-ubyte", "labels-idx1-ubyte" };

    /// <summary>
    /// The list of the files attacks wrote into their --output (relative paths; written before the files, with the earlier
    /// run's, and after them alone): --overwrite removes or replaces only files listed there, so files the user put in the
    /// folder stay whatever their names.
    /// </summary>
    internal const string ManifestName = "advml-manifest.json";

    /// <summary>The lock file a running attack holds in its --output (<see cref="FolderLock"/>; hidden, so folder readers pass it by).</summary>
    internal const string LockName = ".advml-attack.lock";

    private sealed record Manifest(string WrittenBy, IReadOnlyList<string> Files);

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("attack", "Write adversarial examples against a model as PNG folders or IDX files");
        foreach (var o in new Option[] { ModelPath, Method, Epsilon, Count, Split, Output, Format, Overwrite, CommonOptions.Eot, CommonOptions.Bpda, CommonOptions.Seed, CommonOptions.Device, CommonOptions.BatchSize, CommonOptions.Precision, CommonOptions.ComputePath }) c.Options.Add(o);
        CommonOptions.AddData(c);
        c.SetAction((p, ct) => Task.FromResult(Run(p, ct)));
        return c;
    }

    private static int Run(ParseResult p, CancellationToken ct)
    {
        // A failed attack leaves nothing behind that it created: no folder (an empty one, or one with part of the
        // images), and in an existing folder no new class folders or files; the existing folder itself stays.
        string output = p.GetValue(Output)!;
        var undo = OutputFiles.TrackCreated(output);
        try
        {
            RefuseInput(p, output); // before anything is written there, the lock included
            OutputFiles.EnsureWritable(output, isFolder: true);
        }
        catch
        {
            undo();
            throw;
        }
        // One attack at a time in a folder (two would mix their images). Refused: what appeared in the folder since
        // this run started is the other run's, so nothing is undone.
        using var held = FolderLock.Acquire(output, LockName, holder =>
            $"--output '{output}' is in use by another attack ({holder}). Two attacks into one folder would mix their images: " +
            "wait for that run to finish, stop it, or choose another --output.");
        try
        {
            return Attack(p, ct);
        }
        catch
        {
            undo(); // while the lock is held: no other attack writes there meanwhile
            throw;
        }
    }

    private static int Attack(ParseResult p, CancellationToken ct)
    {
        string method = CommonOptions.Methods(p.GetValue(Method)!)[0];
        double eps = CommonOptions.Epsilons(p.GetValue(Epsilon).ToString(System.Globalization.CultureInfo.InvariantCulture))[0];
        string format = p.GetValue(Format)!.ToLowerInvariant();
        if (format is not ("png" or "idx")) throw new CliException($"--format '{format}': use png or idx.");
        string split = p.GetValue(Split)!.ToLowerInvariant();
        if (split is not ("test" or "train")) throw new CliException($"--split '{split}': use test or train.");
        string output = p.GetValue(Output)!;
        var (ours, foreign) = ExistingOutput(output, p.GetValue(Overwrite));
        var device = CommonOptions.ParseDevice(p);
        var (model, description) = CliData.LoadModel(p.GetValue(ModelPath)!, device);
        var data = CliData.OpenSplitFor(p, split == "train", p.GetValue(Count), description, p.GetValue(ModelPath)!);
        NativePreflight.Check(p, p.GetValue(ModelPath)!, description, data.RowCount, device);
        // What this run will write, known before the attack: a file the user put there under one of these names is never replaced.
        var planned = format == "idx" ? IdxNames : ImageFolder.RowFiles(data.ClassNames, Enumerable.Range(0, data.RowCount).Select(data.GetLabel).ToArray());
        var full = planned.Select(f => Path.GetFullPath(Path.Combine(output, f))).ToHashSet();
        var clashes = foreign.Where(full.Contains).Order(StringComparer.Ordinal).ToList();
        if (clashes.Count > 0)
            throw new CliException($"--output '{output}' holds '{clashes[0]}', which advml did not write (it is not in {ManifestName}), and this run would replace it " +
                $"({clashes.Count} such files). Move your files out of the folder, or choose another --output.");
        // Listed before they are written, with the earlier run's: a run killed half-way leaves no file of its own unlisted,
        // so the rerun (--overwrite) replaces them.
        WriteManifest(output, full.Concat(ours));

        var (eot, bpda) = CommonOptions.GradientSettings(p);
        var attack = AttackRegistry.Create(method, new AttackOptions
        {
            Epsilon = eps, Seed = p.GetValue(CommonOptions.Seed), InputRange = description.InputRangeOrDefault, Compute = CommonOptions.Compute(p), EotSamples = eot, BpdaLayers = bpda,
        });
        int n = data.RowCount, size = description.Channels * description.Height * description.Width, batch = p.GetValue(CommonOptions.BatchSize);
        // Room for the result, probed before the attack runs: IDX is exact; a PNG is taken as its pixels plus header,
        // at least one 4 KiB block.
        OutputFiles.EnsureWritable(output, isFolder: true, format == "idx" ? (long)n * (size + 1) + 64 : n * Math.Max(4096L, size + 1024L));
        var pixels = new float[(long)n * size];
        var labels = new uint[n];
        // Rows in order, batch by batch; an image folder is decoded ahead of the model on background workers.
        long batches = (n + (long)batch - 1) / batch;
        using var reader = new BatchPrefetcher(data, 0, batches, i => Enumerable.Range((int)(i * batch), (int)Math.Min(batch, n - i * batch)).ToArray(),
            data is ImageSet ? PrefetchOptions.Synchronous : new PrefetchOptions());
        ConsoleOutput.WithProgress($"{method} eps {eps}", report =>
        {
            for (int start = 0; start < n; start += batch)
            {
                ct.ThrowIfCancellationRequested();
                using var scope = NewDisposeScope();
                int count = Math.Min(batch, n - start);
                var (x, y) = reader.Take(start / batch, device);
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
            IdxFile.WriteLabels(Path.Combine(output, "labels-idx1-ubyte"), labels); // 32-bit labels when a class index passes 255
            AnsiConsole.MarkupLine($"Wrote {n} images and labels as IDX to [bold]{Markup.Escape(output)}[/].");
        }
        // --overwrite's clean-up: once the new set is complete, the earlier run's files that it did not replace go (a mix
        // of two runs would be evaluated as one); only files an earlier run listed in its manifest. Then the manifest
        // lists this run's files alone.
        int removed = 0;
        foreach (var f in ours.Where(f => !full.Contains(f) && File.Exists(f)))
        {
            File.Delete(f);
            removed++;
        }
        WriteManifest(output, full);
        if (removed > 0) AnsiConsole.MarkupLine($"Removed {removed} images of the earlier run that this run did not replace.");
        if (foreign.Count > 0)
            AnsiConsole.MarkupLine(Markup.Escape($"Left {foreign.Count} files advml did not write in '{output}' as they were (e.g. '{foreign[0]}'); they are not part of this run."));
        return 0;
    }

    /// <summary>Refuses an output folder that is, holds or lies inside the input data, even with --overwrite (checked before anything is written there).</summary>
    private static void RefuseInput(ParseResult p, string output)
    {
        var inputs = p.GetValue(CommonOptions.Data) is { } data
            ? new[] { Path.Combine(data, "train"), Path.Combine(data, "test") }
            : new[] { FashionMnist.ResolveDefaultFolder() };
        string real = OutputFiles.RealPath(output);
        foreach (var input in inputs.Select(OutputFiles.RealPath))
            if (OutputFiles.IsSameOrInside(real, input) || OutputFiles.IsSameOrInside(input, real))
                throw new CliException($"--output '{output}' is, holds or lies inside the input data '{input}'; adversarial examples never go into their input, " +
                    "not even with --overwrite. Choose a folder of their own (e.g. -o adv-test).");
    }

    /// <summary>
    /// Refuses an output folder that holds images unless --overwrite. Returns the image and IDX files there that an
    /// earlier attack wrote (listed in its manifest: to remove once the new set is complete) and the others (never
    /// removed or replaced), as full paths.
    /// </summary>
    private static (IReadOnlyList<string> Ours, IReadOnlyList<string> Foreign) ExistingOutput(string output, bool overwrite)
    {
        if (!Directory.Exists(output)) return (Array.Empty<string>(), Array.Empty<string>());
        bool IsOutput(string f) => ImageFolder.ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant()) || IdxNames.Contains(Path.GetFileName(f));
        // Images directly in the folder or in its class folders: what an earlier attack (or a data set) put there.
        var files = Directory.EnumerateFiles(output).Concat(Directory.EnumerateDirectories(output).SelectMany(Directory.EnumerateFiles)).Where(IsOutput)
            .Select(Path.GetFullPath).ToList();
        if (files.Count > 0 && !overwrite)
            throw new CliException($"--output '{output}' already holds {files.Count} image files (e.g. '{files[0]}'); add --overwrite to replace them, or choose a new folder.");
        var listed = ReadManifest(output);
        return (files.Where(listed.Contains).ToList(), files.Where(f => !listed.Contains(f)).ToList());
    }

    /// <summary>Writes <see cref="ManifestName"/> (atomically): the given files, relative to the folder, with '/' separators.</summary>
    private static void WriteManifest(string output, IEnumerable<string> fullPaths)
    {
        string root = Path.GetFullPath(output);
        var files = fullPaths.Distinct().Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/')).Order(StringComparer.Ordinal).ToArray();
        OutputFiles.WriteAtomically(Path.Combine(output, ManifestName), JsonSerializer.Serialize(new Manifest("advml attack", files), new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>The files an earlier attack listed in <see cref="ManifestName"/>, as full paths; none when there is no manifest (nothing is taken as ours).</summary>
    private static HashSet<string> ReadManifest(string output)
    {
        string path = Path.Combine(output, ManifestName);
        if (!File.Exists(path)) return new HashSet<string>();
        Manifest? manifest;
        try { manifest = JsonSerializer.Deserialize<Manifest>(File.ReadAllText(path)); }
        catch (JsonException e)
        {
            throw new CliException($"--output '{output}': its {ManifestName} (the list of files an earlier attack wrote) is unreadable ({CliException.OneLine(e.Message)}). " +
                "Delete it and the earlier run's images, or choose another --output.");
        }
        string root = Path.GetFullPath(output);
        return (manifest?.Files ?? Array.Empty<string>())
            .Select(f => Path.GetFullPath(Path.Combine(root, f.Replace('/', Path.DirectorySeparatorChar))))
            .Where(f => OutputFiles.IsSameOrInside(f, root)) // a manifest never names a file outside its folder
            .ToHashSet();
    }
}
