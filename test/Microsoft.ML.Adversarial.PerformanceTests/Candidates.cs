using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Issue 25, "a fast path that is also correct": the candidate configurations for a CPU whose oneDNN computes wrong
/// channels-last 1x1 convolutions, timed side by side with the accuracy gate beside each: the plain path; the default
/// (channels-last, BatchNorm folded, checked); the default with the layers that defect hits in NCHW (Inception v3's
/// Conv2d_3b_1x1, what the check's fallback does there); and the default under ONEDNN_MAX_CPU_ISA=AVX2 (oneDNN's AVX2
/// kernels for the whole process; a child process, since oneDNN reads it once).
/// </summary>
internal static class Candidates
{
    private static readonly string[] DefectLayers = { "Conv2d_3b_1x1" };

    public static int Run(string network, string[] workloads, int threads, bool childDefaultOnly, string label)
    {
        torch.set_num_threads(threads);
        var rows = new List<string>();
        foreach (var name in workloads)
        {
            var plan = Harness.PlanFor(network, name);
            var candidates = childDefaultOnly
                ? new[] { (label, ComputeOptions.Default, (string[]?)null) }
                : new[]
                {
                    ("plain (NCHW, unfolded)", ComputeOptions.Plain, (string[]?)null),
                    ("default (channels-last, BN folded, checked)", ComputeOptions.Default, null),
                    ($"default with {string.Join(", ", DefectLayers)} in NCHW (the fallback)", ComputeOptions.Default, DefectLayers),
                };
            foreach (var (text, options, layers) in candidates)
            {
                using var workload = new Workload(name, network, plan.Batch, options);
                var verdict = workload.Verdict();
                if (layers is not null) workload.RunInPlainLayout(layers);
                for (int i = 0; i < plan.Warmup; i++) workload.Run();
                var times = new List<double>();
                for (int i = 0; i < Math.Max(3, plan.Reps); i++)
                {
                    var watch = Stopwatch.StartNew();
                    workload.Run();
                    times.Add(watch.Elapsed.TotalSeconds);
                }
                string rate = verdict.Outcome == FastPathOutcome.PlainPath ? "no speed" : (plan.Batch / Harness.Median(times)).ToString("F2", CultureInfo.InvariantCulture);
                rows.Add($"| {network} | {name} | {text} | {plan.Batch} | {Workload.Gate(verdict)} | {rate} |");
                Console.WriteLine(rows[^1]);
            }
        }
        if (childDefaultOnly) return 0;

        // The same default path with oneDNN limited to AVX2, in a child process.
        var psi = new ProcessStartInfo("dotnet", $"\"{typeof(Candidates).Assembly.Location}\" candidates --network {network} --workloads {string.Join(",", workloads)} --threads {threads} --child \"default under ONEDNN_MAX_CPU_ISA=AVX2\"")
        { RedirectStandardOutput = true, UseShellExecute = false };
        psi.Environment["ONEDNN_MAX_CPU_ISA"] = "AVX2";
        using (var child = Process.Start(psi)!)
        {
            foreach (var line in child.StandardOutput.ReadToEnd().Split('\n').Where(l => l.StartsWith("| ", StringComparison.Ordinal)))
                rows.Add(line.TrimEnd());
            child.WaitForExit();
        }
        Console.WriteLine();
        Console.WriteLine($"CPU: {FastPathCheck.Cpu}; {threads} threads; images per second, median of the repetitions.");
        Console.WriteLine("| network | workload | candidate | batch | outputs vs plain | img/s |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        foreach (var row in rows.OrderBy(r => r.Split('|')[2]).ThenBy(r => r.Contains("plain (") ? 0 : r.Contains("AVX2") ? 3 : r.Contains("fallback") ? 2 : 1)) Console.WriteLine(row);
        return 0;
    }
}
