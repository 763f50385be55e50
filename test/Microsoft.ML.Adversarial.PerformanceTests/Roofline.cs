using System.Diagnostics;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// The roofline (issue 16, "The limit"): this machine's practical peak measured with TorchSharp (GEMM and 3x3
/// convolution, fp32 and bf16, NCHW and channels-last), the GFLOP per image of each workload counted from the network
/// (<see cref="FlopCounter"/>), and each workload's achieved GFLOP/s as a fraction of the measured peak.
/// </summary>
internal static class Roofline
{
    /// <summary>
    /// The compute settings each workload is timed under, one line each: a label, whether the reduced-precision peak
    /// applies, and how to build the workload. Adding a row per precision or layout is one line here.
    /// </summary>
    private static readonly (string Label, bool ReducedPrecision, Func<string, string, int, Workload> Create)[] Computes =
    {
        ("fp32 plain", false, (w, n, b) => new Workload(w, n, b, ComputeOptions.Plain)),
        ("fp32 channels-last", false, (w, n, b) => new Workload(w, n, b, new ComputeOptions { FoldBatchNorm = false })),
        ("fp32 default (channels-last, BN folded)", false, (w, n, b) => new Workload(w, n, b, ComputeOptions.Default)),
        ("bf16 (channels-last, BN folded)", true, (w, n, b) => new Workload(w, n, b, ComputeOptions.BFloat16)),
    };

    /// <summary>The networks <see cref="Workload"/> builds (all of them are timed).</summary>
    private static readonly string[] Timed = { "smallcnn", "inception", "resnet50" };

    /// <summary>Steps of iter. basic in the workload: eps 16 and the paper's rule min(eps + 4, 1.25 eps) = 20.</summary>
    private const int IterBasicSteps = 20;

    /// <summary>Adversarial examples per training minibatch, k / m (the workload's AdversarialPerBatch = batch / 2).</summary>
    private const double AdversarialFraction = 0.5;

    /// <summary>
    /// GFLOP per image of <paramref name="workload"/>, from F = the forward pass's convolution and dense FLOPs per image
    /// (<see cref="FlopCounter"/>). Each backward through a convolution or dense layer costs F for the input gradients
    /// and F for the weight gradients; attacks take gradients for the input only (AttackBatch.InputGradient, no weight
    /// gradients), and a training step needs no input gradient of the first layer (the images do not require grad).
    /// <list type="bullet">
    /// <item>fgsm: forward + input-gradient backward = 2F.</item>
    /// <item>step-ll: 2F as well: the least-likely class comes from the same forward's logits (detached), no extra pass.</item>
    /// <item>iter-basic: 20 steps of forward + input-gradient backward = 20 x 2F.</item>
    /// <item>train-step, per image of the minibatch m with k = m/2 adversarial: step l.l. on k (2F each), then forward
    /// on m (F), weight gradients (F) and input gradients of every layer but the first (F - first) = (k/m) 2F + 3F - first.</item>
    /// </list>
    /// BatchNorm, activations, pooling, the loss and the optimiser update are left out (a few percent on these networks).
    /// </summary>
    internal static double GflopPerImage(string workload, FlopCounter.Count f) => workload switch
    {
        "fgsm" or "step-ll" => 2 * f.Forward,
        "iter-basic" => IterBasicSteps * 2 * f.Forward,
        "train-step" => AdversarialFraction * 2 * f.Forward + 3 * f.Forward - f.FirstLayer,
        _ => throw new ArgumentException($"No FLOP model for workload '{workload}'. Known: {string.Join(", ", Workload.Names)}."),
    } / 1e9;

    private sealed record Peak(string Kernel, bool ReducedPrecision, double Best, double Median, string OutputLayout);

    public static int Run(string[] networks, string[] workloads, int threads, int peakReps, bool countOnly, string output)
    {
        var unknown = workloads.Where(w => !Workload.Names.Contains(w)).ToList();
        if (unknown.Count > 0)
            throw new ArgumentException($"--workloads: unknown workload(s) {string.Join(", ", unknown)}. Known: {string.Join(", ", Workload.Names)}.");
        torch.set_num_threads(threads);
        var counts = networks.ToDictionary(n => n, FlopCounter.Forward); // first: an unknown network fails before the peak is measured
        var lines = new List<string>
        {
            $"Machine: {Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
            $".NET {Environment.Version}, TorchSharp {typeof(torch).Assembly.GetName().Version}, {threads} threads.",
            "",
        };

        string startLoad = LoadAverage();
        List<Peak> peaks = new();
        Peak? best32 = null, best16 = null;
        double fp32Peak = double.NaN, bf16Peak = double.NaN;
        if (!countOnly)
        {
            peaks = MeasurePeaks(peakReps);
            lines.Add($"Measured peak (best and median of {peakReps} repetitions after 2 warm-ups, no grad):");
            lines.Add("");
            lines.Add("| kernel | precision | best GFLOP/s | median GFLOP/s | output layout |");
            lines.Add("| --- | --- | --- | --- | --- |");
            foreach (var p in peaks)
                lines.Add($"| {p.Kernel} | {(p.ReducedPrecision ? "bf16" : "fp32")} | {p.Best:F0} | {p.Median:F0} | {p.OutputLayout} |");
            best32 = peaks.Where(p => !p.ReducedPrecision).MaxBy(p => p.Best)!;
            best16 = peaks.Where(p => p.ReducedPrecision).MaxBy(p => p.Best)!;
            (fp32Peak, bf16Peak) = (best32.Best, best16.Best);
            lines.Add("");
            lines.Add($"Peak for fp32 rows: {fp32Peak:F0} GFLOP/s ({best32.Kernel}, best of {peakReps}); " +
                      $"for reduced-precision rows: {bf16Peak:F0} GFLOP/s ({best16.Kernel} bf16, best of {peakReps}).");
            lines.Add("");
        }

        lines.Add("Forward pass, convolutions and dense layers, counted by forward hooks at batch 1 (2 x MACs):");
        lines.Add("");
        foreach (var (n, c) in counts)
            lines.Add($"- {n} at {c.Shape.H}x{c.Shape.W}: {c.Forward / 1e9:G4} GFLOP/img ({c.Layers} layers){Published(n)}");
        lines.Add("");

        lines.Add("| network | workload | compute | batch | GFLOP/img | outputs vs plain | img/s | GFLOP/s | % of measured peak |");
        lines.Add("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var network in networks)
            foreach (var name in Workload.Names.Where(w => workloads.Contains(w)))
            {
                double gflop = GflopPerImage(name, counts[network]);
                var (_, _, batch, warmup, reps) = Harness.PlanFor(network, name);
                if (countOnly || !Timed.Contains(network))
                {
                    string why = countOnly ? "not timed (--count-only)" : "not timed (Workload builds smallcnn and inception only)";
                    lines.Add($"| {network} | {name} | - | {batch} | {gflop:G4} | | {why} | | |");
                    Console.WriteLine(lines[^1]);
                    continue;
                }
                foreach (var (label, reduced, create) in Computes)
                {
                    FastPathVerdict? verdict = null;
                    double seconds = TimeWorkload(() => create(name, network, batch), warmup, reps, w => verdict = w.Verdict());
                    double imagesPerSecond = batch / seconds, gflops = imagesPerSecond * gflop;
                    double peak = reduced ? bf16Peak : fp32Peak;
                    // MLPerf's rule: no time counts for a path whose outputs miss the reference.
                    lines.Add(verdict!.Outcome == FastPathOutcome.PlainPath
                        ? $"| {network} | {name} | {label} | {batch} | {gflop:G4} | {Workload.Gate(verdict)} | no speed | | |"
                        : $"| {network} | {name} | {label} | {batch} | {gflop:G4} | {Workload.Gate(verdict)} | {imagesPerSecond:F1} | {gflops:F0} | {gflops / peak:P0} |");
                    Console.WriteLine(lines[^1]);
                }
            }

        if (!countOnly)
        {
            // The machine may be shared: measure the peak kernels again, so a busy window shows.
            var again = MeasurePeaks(peakReps, (kernel, reduced) => kernel == (reduced ? best16!.Kernel : best32!.Kernel));
            lines.Add("");
            lines.Add($"Peak kernels again after the workloads: {string.Join("; ", again.Select(p => $"{p.Kernel} {(p.ReducedPrecision ? "bf16" : "fp32")} best {p.Best:F0} GFLOP/s"))}" +
                      (again.Any(p => Math.Abs(p.Best / (p.ReducedPrecision ? bf16Peak : fp32Peak) - 1) > 0.1) ? " (more than 10% off the first measurement: the machine was busy, run again)." : "."));
        }
        lines.Add($"Load average (1 min) at the start: {startLoad}, at the end: {LoadAverage()}.");
        lines.Add("");
        lines.Add("img/s = batch / median time of a repetition (warm-up first; batches and repetitions as in `compare`). " +
                  "GFLOP/img: see Roofline.GflopPerImage (fgsm and step-ll 2F, iter-basic 20 x 2F, train-step 1F + 3F - first layer; F = forward).");
        string text = string.Join(Environment.NewLine, lines) + Environment.NewLine;
        Console.WriteLine();
        Console.WriteLine(text);
        if (output.Length > 0) File.WriteAllText(output, text);
        return 0;
    }

    /// <summary>The 1-minute load average (Linux), or "n/a".</summary>
    private static string LoadAverage() => File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] : "n/a";

    /// <summary>The published figure to check the count against (torchvision's model tables: GMAC, which they call GFLOPS).</summary>
    private static string Published(string network) => network switch
    {
        "inception" => "; published: 5.71 GMAC = 11.4 GFLOP",
        "resnet50" => "; published: 4.09 GMAC = 8.2 GFLOP",
        _ => "",
    };

    private static double TimeWorkload(Func<Workload> create, int warmup, int reps, Action<Workload> gate)
    {
        using var workload = create();
        gate(workload); // the accuracy gate first: the check it may run stays out of the timed passes
        for (int i = 0; i < warmup; i++) workload.Run();
        var times = new List<double>();
        for (int i = 0; i < Math.Max(1, reps); i++)
        {
            var watch = Stopwatch.StartNew();
            workload.Run();
            times.Add(watch.Elapsed.TotalSeconds);
        }
        return Harness.Median(times);
    }

    /// <summary>
    /// GEMM 2048^3 and a 3x3 convolution at Inception's 35x35 stage (batch 8, 256 to 256 channels, padding 1), NCHW and
    /// channels-last, in fp32 and bf16. TorchSharp 0.107 has no memory_format: a channels-last tensor is an NHWC copy
    /// viewed back as NCHW, and libtorch picks the channels-last kernel from its strides (the output layout shows it did).
    /// </summary>
    private static List<Peak> MeasurePeaks(int reps, Func<string, bool, bool>? only = null)
    {
        const long n = 2048, batch = 8, channels = 256, side = 35;
        double gemmFlop = 2.0 * n * n * n;
        double convFlop = 2.0 * batch * channels * side * side * channels * 3 * 3;
        var peaks = new List<Peak>();
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            manual_seed(0);
            bool reduced = dtype != ScalarType.Float32;
            var a = randn(n, n).to(dtype);
            var b = randn(n, n).to(dtype);
            var x = randn(batch, channels, side, side).to(dtype);
            var w = (randn(channels, channels, 3, 3) * 0.02).to(dtype);
            var xl = ComputeModel.ToChannelsLast(x);
            var wl = ComputeModel.ToChannelsLast(w);
            var padding = new long[] { 1, 1 };
            var kernels = new (string Name, double Flop, Func<Tensor> Op)[]
            {
                ($"GEMM {n}x{n}x{n}", gemmFlop, () => a.matmul(b)),
                ($"conv 3x3 {batch}x{channels}x{side}x{side}, {channels} out, NCHW", convFlop, () => nn.functional.conv2d(x, w, padding: padding)),
                ($"conv 3x3 {batch}x{channels}x{side}x{side}, {channels} out, channels-last", convFlop, () => nn.functional.conv2d(xl, wl, padding: padding)),
            };
            foreach (var (name, flop, op) in kernels.Where(k => only is null || only(k.Name, reduced)))
            {
                var p = Measure(name, reduced, flop, op, reps);
                peaks.Add(p);
                Console.WriteLine($"peak: {p.Kernel} {(reduced ? "bf16" : "fp32")}: best {p.Best:F0}, median {p.Median:F0} GFLOP/s, output {p.OutputLayout}");
            }
        }
        return peaks;
    }

    private static Peak Measure(string kernel, bool reduced, double flop, Func<Tensor> op, int reps)
    {
        string layout;
        using (var first = NewDisposeScope())
        {
            var y = op();
            layout = y.dim() != 4 ? "row-major" : y.stride(1) == 1 && y.shape[1] > 1 ? "channels-last" : y.is_contiguous() ? "NCHW" : "other";
        }
        using (var warm = NewDisposeScope()) op();
        var times = new List<double>();
        for (int i = 0; i < reps; i++)
        {
            using var scope = NewDisposeScope();
            var watch = Stopwatch.StartNew();
            op();
            times.Add(watch.Elapsed.TotalSeconds);
        }
        return new Peak(kernel, reduced, flop / times.Min() / 1e9, flop / Harness.Median(times) / 1e9, layout);
    }
}
