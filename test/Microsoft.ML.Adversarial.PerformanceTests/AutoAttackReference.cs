using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Issue 28: our AutoAttack components against the reference implementation (github.com/fra31/auto-attack) on the same
/// network and images. A SmallCnn is trained here on Fashion-MNIST; its weights and the first test images go to a
/// folder that test/reference/autoattack_reference.py reads with the reference's own attacks ('standard' settings).
/// Per attack and seed: robust images on each side, those robust on one side only, McNemar's exact test on them, and
/// the times. Our robust count must not exceed the reference's beyond sampling noise.
/// </summary>
internal static class AutoAttackReference
{
    public static int Run(string referenceDir, string python, int count, int trainCount, string[] attacks, int[] seeds, int threads, double eps,
        string network = "smallcnn", int trainEpochs = 3)
    {
        torch.set_num_threads(threads);
        if (!File.Exists(Path.Combine(referenceDir, "autoattack", "autopgd_base.py")))
        {
            Console.Error.WriteLine($"--reference '{referenceDir}' is not a checkout of github.com/fra31/auto-attack (no autoattack/autopgd_base.py). " +
                "Clone it (git clone https://github.com/fra31/auto-attack; the figures in docs/attacks.md are at commit a392200) and pass its folder.");
            return 2;
        }
        if (network is not ("smallcnn" or "resnet18"))
        {
            Console.Error.WriteLine($"--network '{network}': use smallcnn (trained here) or resnet18 (torchvision's, trained by the reference side in PyTorch).");
            return 2;
        }
        string commit = Git(referenceDir, "rev-parse --short HEAD");
        string folder = Directory.CreateTempSubdirectory("advml-autoattack-").FullName;
        var data = FashionMnist.Load(new FashionMnistOptions { Folder = FashionMnist.ResolveDefaultFolder(), Split = FashionMnistSplit.Test, Count = count, Subset = SubsetMode.First });
        var (x, y) = data.ToTensors(0, data.RowCount);
        torch.nn.Module<Tensor, Tensor> model;
        string networkText;
        var args = new List<string> { "--attacks", string.Join(",", attacks), "--seeds", string.Join(",", seeds) };
        if (network == "resnet18")
        {
            // The issue's setting: Fashion-MNIST at 32 x 32 RGB, pixels in [0, 1], no normalisation. Zero padding (2 pixels
            // each side) and the grey value on 3 channels are exact on both sides, unlike a resize.
            var train = FashionMnist.Load(new FashionMnistOptions { Folder = FashionMnist.ResolveDefaultFolder(), Split = FashionMnistSplit.Train, Count = trainCount, Subset = SubsetMode.Stratified });
            var (tx, ty) = train.ToTensors(0, train.RowCount);
            x = Rgb32(x);
            Testing.ReferenceModels.WriteFolder(folder, torch.nn.Sequential(), eps, ("images", x), ("labels", y), ("train_images", Rgb32(tx)), ("train_labels", ty));
            args.AddRange(new[] { "--network", "resnet18", "--train-epochs", trainEpochs.ToString(CultureInfo.InvariantCulture) });
            model = null!;
            networkText = $"torchvision ResNet-18 trained by the reference side in PyTorch (Adam 1e-3, batch 128, {trainEpochs} epochs) on {trainCount} Fashion-MNIST images padded to 32 x 32 RGB, imported with ModelIO.Import";
        }
        else
        {
            model = Train(trainCount);
            Testing.ReferenceModels.WriteFolder(folder, model, eps, ("images", x), ("labels", y));
            networkText = $"SmallCnn (rho 0.5) trained as the tests train theirs (ReferenceModels.TrainSmallCnn) on {trainCount} Fashion-MNIST images";
        }

        string script = Path.Combine(Harness.RepoRoot(), "test", "reference", "autoattack_reference.py");
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = false, RedirectStandardError = false };
        foreach (var a in new[] { script, folder, "--autoattack", referenceDir }.Concat(args)) psi.ArgumentList.Add(a);
        Console.WriteLine($"Reference: fra31/auto-attack {commit}, {python}; network {networkText}; the first {count} test images; eps {eps}/255 (L-inf; an L2 radius for the -l2 names); CPU {Environment.ProcessorCount} cores, {threads} threads.");
        using (var p = Process.Start(psi)!)
        {
            p.WaitForExit();
            if (p.ExitCode != 0) { Console.Error.WriteLine($"the reference failed (exit {p.ExitCode}); its folder: {folder}"); return 1; }
        }
        if (network == "resnet18")
        {
            var description = new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), 10, 3, 32, 32) { InputRange = InputRange.UnitInterval };
            model = ModelIO.Import(description, Path.Combine(folder, "resnet18.pt"));
            model.eval();
            var theirLogits = torch.tensor(MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(folder, "logits.bin"))).ToArray()).view(x.shape[0], 10);
            using (no_grad())
            {
                var ourLogits = model.call(x);
                double diff = ourLogits.Minus(theirLogits).abs().max().item<float>();
                long agree = ourLogits.argmax(1).eq(theirLogits.argmax(1)).sum().item<long>();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Imported ResNet-18: logits differ from PyTorch's by at most {diff:G2}; argmax agrees on {agree} of {x.shape[0]}."));
            }
        }
        var times = JsonSerializer.Deserialize<Dictionary<string, double>>(File.ReadAllText(Path.Combine(folder, "times.json")))!;

        bool[] clean;
        using (no_grad()) clean = model.call(x).argmax(1).eq(y).data<bool>().ToArray();
        Console.WriteLine();
        Console.WriteLine($"| attack | seed | clean | reference robust | ours robust | robust only for the reference | robust only for us | McNemar p | time ref / ours |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|");
        int worse = 0;
        foreach (var attackName in attacks)
            foreach (var seed in seeds)
            {
                var options = AttackRegistry.OptionsFor(attackName, new AttackOptions { Epsilon = eps, Seed = seed, Compute = ComputeOptions.Plain });
                var watch = Stopwatch.StartNew();
                bool[] ours;
                using (var scope = NewDisposeScope())
                {
                    var adv = AttackRegistry.Create(attackName, options).Generate(model, x, y);
                    using (no_grad()) ours = model.call(adv).argmax(1).eq(y).data<bool>().ToArray();
                }
                watch.Stop();
                ours = ours.Select((r, i) => r && clean[i]).ToArray();
                var theirs = File.ReadAllBytes(Path.Combine(folder, $"robust_{attackName}_{seed}.bin")).Select(b => b != 0).ToArray();
                int onlyRef = theirs.Where((r, i) => r && !ours[i]).Count(), onlyOurs = ours.Where((r, i) => r && !theirs[i]).Count();
                double p = McNemar(onlyRef, onlyOurs);
                if (onlyOurs > onlyRef && p < 0.05) worse++;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {attackName} | {seed} | {clean.Count(c => c)} | {theirs.Count(r => r)} | {ours.Count(r => r)} | {onlyRef} | {onlyOurs} | {p:F3} | {times[$"{attackName}_{seed}"]:F0} s / {watch.Elapsed.TotalSeconds:F0} s |"));
            }
        Console.WriteLine();
        Console.WriteLine(worse == 0
            ? "No component leaves significantly more images robust than the reference (McNemar, p < 0.05)."
            : $"{worse} attack/seed pairs leave significantly more images robust than the reference (McNemar, p < 0.05): ours is weaker there.");
        Directory.Delete(folder, recursive: true);
        return worse == 0 ? 0 : 1;
    }

    /// <summary>
    /// APGD-CE from one random start on both sides (ours, drawn from <paramref name="seed"/>, given to the reference as
    /// its x_init): the summed best loss after each iteration, side by side, to find the iteration where they part.
    /// </summary>
    public static int Trace(string referenceDir, string python, int count, int trainCount, int seed, double eps, int threads)
    {
        torch.set_num_threads(threads);
        string folder = Directory.CreateTempSubdirectory("advml-apgd-trace-").FullName;
        var model = Train(trainCount);
        var data = FashionMnist.Load(new FashionMnistOptions { Folder = FashionMnist.ResolveDefaultFolder(), Split = FashionMnistSplit.Test, Count = count, Subset = SubsetMode.First });
        var (all, allY) = data.ToTensors(0, data.RowCount);
        Tensor x, y;
        using (no_grad())
        {
            var keep = model.call(all).argmax(1).eq(allY).nonzero().squeeze(1);
            x = all.index_select(0, keep);
            y = allY.index_select(0, keep);
        }
        // Our start, as Apgd draws it: t = 2u - 1 from the attack's generator, scaled to L-inf norm eps, clipped.
        var u = torch.rand(x.shape, dtype: x.dtype, generator: new Generator((ulong)seed));
        var t = u * 2 - 1;
        var start = (x + t / t.abs().flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1) * (eps / 255)).clamp(0, 1);
        start = torch.minimum(torch.maximum(start, x - eps / 255), x + eps / 255).clamp(0, 1);
        Testing.ReferenceModels.WriteFolder(folder, model, eps, ("images", x), ("labels", y), ("start", start));

        var ours = new List<double>();
        var apgd = new Apgd(new ApgdOptions { Epsilon = eps, Seed = seed, Compute = ComputeOptions.Plain }) { IterationObserver = (i, best) => ours.Add(best.sum().item<float>()) };
        var adv = apgd.Generate(model, x, y);
        int oursRobust;
        using (no_grad()) oursRobust = (int)model.call(adv).argmax(1).eq(y).sum().item<long>();

        string script = Path.Combine(Harness.RepoRoot(), "test", "reference", "autoattack_reference.py");
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true };
        foreach (var a in new[] { script, folder, "--autoattack", referenceDir, "--trace" }) psi.ArgumentList.Add(a);
        using var proc = Process.Start(psi)!;
        var theirs = new List<double>();
        int theirsRobust = -1;
        string? line;
        while ((line = proc.StandardOutput.ReadLine()) is not null)
        {
            if (line.StartsWith("best ", StringComparison.Ordinal)) theirs.Add(double.Parse(line[5..], CultureInfo.InvariantCulture));
            else if (line.StartsWith("robust ", StringComparison.Ordinal)) theirsRobust = int.Parse(line[7..], CultureInfo.InvariantCulture);
        }
        proc.WaitForExit();
        Console.WriteLine($"APGD-CE from the same start (seed {seed}), {x.shape[0]} images, eps {eps}/255: robust ours {oursRobust}, reference {theirsRobust}.");
        Console.WriteLine("| iteration | summed best loss, ours | reference |");
        Console.WriteLine("|---|---|---|");
        for (int i = 0; i < Math.Min(ours.Count, theirs.Count); i++)
            if (i < 30 || i % 10 == 9 || Math.Abs(ours[i] - theirs[i]) > 1e-3 * Math.Abs(theirs[i]))
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {i} | {ours[i]:F4} | {theirs[i]:F4} |"));
        Directory.Delete(folder, recursive: true);
        return 0;
    }

    /// <summary>Exact two-sided McNemar test: the discordant pairs split as a fair coin would split them.</summary>
    internal static double McNemar(int b, int c)
    {
        int n = b + c, k = Math.Min(b, c);
        if (n == 0) return 1;
        double tail = 0;
        for (int i = 0; i <= k; i++) tail += Math.Exp(LogChoose(n, i) - n * Math.Log(2));
        return Math.Min(1, 2 * tail);
    }

    private static double LogChoose(int n, int k)
    {
        double s = 0;
        for (int i = 1; i <= k; i++) s += Math.Log(n - k + i) - Math.Log(i);
        return s;
    }

    /// <summary>[N, 1, 28, 28] to [N, 3, 32, 32]: 2 zero pixels each side, the grey value on each channel.</summary>
    private static Tensor Rgb32(Tensor x) => torch.nn.functional.pad(x, new long[] { 2, 2, 2, 2 }).expand(-1, 3, -1, -1).contiguous();

    private static SmallCnn Train(int count) => Testing.ReferenceModels.TrainSmallCnn(
        FashionMnist.Load(new FashionMnistOptions { Folder = FashionMnist.ResolveDefaultFolder(), Split = FashionMnistSplit.Train, Count = count, Subset = SubsetMode.Stratified }));


    private static string Git(string dir, string args)
    {
        var psi = new ProcessStartInfo("git", $"-C \"{dir}\" {args}") { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        string s = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return p.ExitCode == 0 ? s : "(not a git checkout)";
    }
}
