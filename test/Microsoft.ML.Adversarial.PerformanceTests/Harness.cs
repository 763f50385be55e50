using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using TorchSharp;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Runs each workload in PyTorch (Debian's python3-torch, test/reference/benchmark_pytorch.py) and in this library,
/// alternating, with the same network, batch, threads, warm-up and repetitions; prints images per second and the ratio.
/// </summary>
internal static class Harness
{
    private sealed record Plan(string Network, string Workload, int Batch, int Warmup, int Reps);

    private static IEnumerable<Plan> Plans(IEnumerable<string> networks)
    {
        foreach (var n in networks)
            foreach (var w in Workload.Names)
                yield return n == "smallcnn"
                    ? new Plan(n, w, w == "train-step" ? 32 : 256, 3, w == "iter-basic" ? 3 : 10)
                    : new Plan(n, w, 8, w == "iter-basic" ? 0 : 1, w == "iter-basic" ? 1 : 3);
    }

    public static int Compare(int rounds, string[] networks, int threads, string output)
    {
        torch.set_num_threads(threads);
        string script = Path.Combine(RepoRoot(), "test", "reference", "benchmark_pytorch.py");
        var lines = new List<string>
        {
            $"Machine: {Environment.ProcessorCount} logical CPUs, {System.Runtime.InteropServices.RuntimeInformation.OSDescription}, " +
            $".NET {Environment.Version}, TorchSharp {typeof(torch).Assembly.GetName().Version}, threads {threads} on both sides, {rounds} alternating rounds.",
            "",
            "| network | workload | batch | ours (img/s) | PyTorch (img/s) | ours / PyTorch |",
            "| --- | --- | --- | --- | --- | --- |",
        };
        string? torchVersion = null;
        foreach (var plan in Plans(networks))
        {
            var ours = new List<double>();
            var theirs = new List<double>();
            using var workload = new Workload(plan.Workload, plan.Network, plan.Batch);
            for (int round = 0; round < rounds; round++)
            {
                var (version, seconds) = RunPyTorch(script, plan, threads);
                torchVersion = version;
                theirs.AddRange(seconds);
                for (int i = 0; i < plan.Warmup; i++) workload.Run();
                for (int i = 0; i < plan.Reps; i++)
                {
                    var watch = Stopwatch.StartNew();
                    workload.Run();
                    ours.Add(watch.Elapsed.TotalSeconds);
                }
            }
            double oursRate = plan.Batch / Median(ours), theirRate = plan.Batch / Median(theirs);
            string line = $"| {plan.Network} | {plan.Workload} | {plan.Batch} | {oursRate:F1} | {theirRate:F1} | {oursRate / theirRate:F2} |";
            Console.WriteLine(line);
            lines.Add(line);
        }
        if (networks.Contains("smallcnn")) lines.AddRange(MLNetPathLines(rounds));
        lines.Insert(1, $"PyTorch {torchVersion} (Debian python3-torch).");
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

    private static (string Version, List<double> Seconds) RunPyTorch(string script, Plan plan, int threads)
    {
        var psi = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { script, plan.Workload, plan.Network == "smallcnn" ? "smallcnn" : "inception", plan.Batch.ToString(CultureInfo.InvariantCulture),
                     plan.Warmup.ToString(CultureInfo.InvariantCulture), plan.Reps.ToString(CultureInfo.InvariantCulture), threads.ToString(CultureInfo.InvariantCulture) })
            psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = threads.ToString(CultureInfo.InvariantCulture);
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string stdout = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        if (p.ExitCode != 0)
            throw new InvalidOperationException($"PyTorch side failed ({plan.Workload}, {plan.Network}): {err.Result}. Install python3-torch python3-torchvision (bash build/setup.sh --with-pytorch).");
        using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        return (json.RootElement.GetProperty("torch").GetString()!, json.RootElement.GetProperty("seconds").EnumerateArray().Select(e => e.GetDouble()).ToList());
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
