using Microsoft.ML.Adversarial.Models;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Adversarial.Data;
using TorchSharp;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Runs each workload in PyTorch (Debian's python3-torch or another Python, see <see cref="PyTorchSide"/>) and in this
/// library, alternating, with the same network, batch, threads, warm-up and repetitions; prints images per second and
/// the ratio (none against a PyTorch on the reference BLAS).
/// </summary>
internal static class Harness
{
    internal sealed record Plan(string Network, string Workload, int Batch, int Warmup, int Reps);

    /// <summary>Batch, warm-up and repetitions of a workload: what `compare` and `roofline` time (the benchmarks take the batch).</summary>
    internal static Plan PlanFor(string network, string workload) => network == "smallcnn"
        ? new Plan(network, workload, workload == "train-step" ? 32 : 256, 3, workload == "iter-basic" ? 3 : 10)
        : new Plan(network, workload, 8, workload == "iter-basic" ? 0 : 1, workload == "iter-basic" ? 1 : 3);

    private static IEnumerable<Plan> Plans(IEnumerable<string> networks) =>
        networks.SelectMany(n => Workload.Names.Select(w => PlanFor(n, w)));

    /// <summary>
    /// The comparison: for each plan and round, each PyTorch (one per <paramref name="pythons"/>) then ours; one column pair
    /// per PyTorch. <paramref name="options"/> go to the PyTorch side; ours runs the library's defaults for the same precision.
    /// </summary>
    public static int Compare(int rounds, string[] networks, int threads, string output, string[] pythons, SpeedOptions options)
    {
        torch.set_num_threads(threads);
        var sides = pythons.Select(p => PyTorchSide.Probe(p, threads)).ToList();
        var header = new List<string>
        {
            $"Machine: {Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
            $".NET {Environment.Version}, TorchSharp {typeof(torch).Assembly.GetName().Version}, threads {threads} on both sides, {rounds} alternating rounds.",
        };
        // 2 OpenMP threads on a busy 2-core machine run 10-30x slower on both sides (threads wait for a time slice at
        // every barrier): say so in the header, so that such a table is not mistaken for a measurement.
        if (File.Exists("/proc/loadavg"))
            header.Add($"Load average at start (1 min): {File.ReadAllText("/proc/loadavg").Split(' ')[0]} on {Environment.ProcessorCount} CPUs; measure on an idle machine.");
        header.AddRange(sides.Select(s => s.Describe()));
        // Ours: the library's defaults for the precision asked (bf16 when PyTorch autocasts to bf16).
        var oursCompute = options.Autocast == "bf16" ? ComputeOptions.BFloat16 : ComputeOptions.Default;
        header.Add($"PyTorch options: {options}; glibc malloc settings as ours ({PyTorchSide.MallocSettings}). Ours: {oursCompute}.");
        // Column titles: the PyTorch version, with the Python where two columns would otherwise read the same.
        var labels = sides.Select(s => sides.Count(o => o.Label == s.Label) > 1 ? $"{s.Label} ({s.Python})" : s.Label).ToList();
        var refusals = sides.Select(s => s.Refusal).OfType<string>().ToList();
        foreach (var r in refusals) Console.Error.WriteLine(r);
        header.ForEach(Console.WriteLine);
        var lines = new List<string>(header)
        {
            "",
            "| network | workload | batch | ours vs plain | ours (img/s) |" + string.Concat(labels.Select(l => $" {l} (img/s) | ours / {l} |")),
            "| --- | --- | --- | --- | --- |" + string.Concat(sides.Select(_ => " --- | --- |")),
        };
        foreach (var plan in Plans(networks))
        {
            var ours = new List<double>();
            var theirs = sides.Select(_ => new List<double>()).ToList();
            using var workload = new Workload(plan.Workload, plan.Network, plan.Batch, oursCompute);
            var verdict = workload.Verdict(); // the accuracy gate, before any timing
            for (int round = 0; round < rounds; round++)
            {
                for (int s = 0; s < sides.Count; s++)
                    theirs[s].AddRange(sides[s].Run(plan.Workload, plan.Network, plan.Batch, plan.Warmup, plan.Reps, threads, options));
                for (int i = 0; i < plan.Warmup; i++) workload.Run();
                for (int i = 0; i < plan.Reps; i++)
                {
                    var watch = Stopwatch.StartNew();
                    workload.Run();
                    ours.Add(watch.Elapsed.TotalSeconds);
                }
            }
            double oursRate = plan.Batch / Median(ours);
            var cells = new StringBuilder();
            for (int s = 0; s < sides.Count; s++)
            {
                double theirRate = plan.Batch / Median(theirs[s]);
                cells.Append(CultureInfo.InvariantCulture, $" {theirRate:F1} | {sides[s].Ratio(oursRate, theirRate)} |");
            }
            string line = verdict.Outcome == FastPathOutcome.PlainPath
                ? $"| {plan.Network} | {plan.Workload} | {plan.Batch} | {Workload.Gate(verdict)} | no speed (outputs differ) |"
                : string.Create(CultureInfo.InvariantCulture, $"| {plan.Network} | {plan.Workload} | {plan.Batch} | {Workload.Gate(verdict)} | {oursRate:F1} |") + cells;
            Console.WriteLine(line);
            lines.Add(line);
        }
        if (networks.Contains("smallcnn")) lines.AddRange(MLNetPathLines(rounds));
        if (refusals.Count > 0) lines.AddRange(refusals.Prepend(""));
        string text = string.Join(Environment.NewLine, lines) + Environment.NewLine;
        Console.WriteLine();
        Console.WriteLine(text);
        if (output.Length > 0) File.WriteAllText(output, text);
        return 0;
    }

    private static IEnumerable<string> MLNetPathLines(int rounds)
    {
        var ml = new MLContext(seed: 1);
        var data = FashionMnist.Load(new FashionMnistOptions { Split = FashionMnistSplit.Test, Count = 2048 });
        var classifier = MLNetPath.UntrainedClassifier(ml, data);
        var fgsm = ml.Transforms.Fgsm(classifier, 16).Fit(ml.Data.LoadFromImageSet(data));
        var raw = new List<double>();
        var pipeline = new List<double>();
        MLNetPath.RunTensors(classifier.Model, data, 256);
        MLNetPath.RunTransformer(fgsm, data);
        for (int i = 0; i < rounds * 3; i++)
        {
            var w = Stopwatch.StartNew();
            MLNetPath.RunTensors(classifier.Model, data, 256);
            raw.Add(w.Elapsed.TotalSeconds);
            w.Restart();
            MLNetPath.RunTransformer(fgsm, data);
            pipeline.Add(w.Elapsed.TotalSeconds);
        }
        double r = data.RowCount / Median(raw), p = data.RowCount / Median(pipeline);
        yield return "";
        yield return "| FGSM eps 16, SmallCnn, 2,048 images, batch 256 | img/s |";
        yield return "| --- | --- |";
        yield return $"| raw tensor API | {r:F1} |";
        yield return $"| ML.NET transformer (IDataView in and out) | {p:F1} ({p / r:P1} of raw) |";
    }

    internal static double Median(List<double> values)
    {
        var s = values.OrderBy(v => v).ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    internal static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.Adversarial.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Run from inside the repository.");
    }
}
