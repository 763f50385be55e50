using System.Diagnostics;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Memory soak: batches of an attack (FGSM, 128 images) plus an adversarial training step (m = 32, k = 16) on SmallCnn,
/// resident memory sampled every N batches; reports the growth from batch 500 to the end.
/// </summary>
internal static class Soak
{
    public static int Run(int batches, int every, int threads, string output)
    {
        torch.set_num_threads(threads);
        manual_seed(0);
        using var attacked = new SmallCnn();
        using var trained = new SmallCnn();
        var x = rand(128, 1, 28, 28);
        var y = randint(0, 10, new long[] { 128 });
        var attack = Attacks.Fgsm(16);
        var trainer = new AdversarialTrainer(new AdversarialTrainingOptions { BatchSize = 32, AdversarialPerBatch = 16, ProgressEvery = 1 });
        var optimizer = trainer.CreateOptimizer(trained);
        trained.train();
        attacked.eval();
        var samples = new List<(int Batch, double Mb, long LiveTensors)>();
        var process = Process.GetCurrentProcess();
        var watch = Stopwatch.StartNew();
        for (int b = 1; b <= batches; b++)
        {
            using (var scope = NewDisposeScope())
            {
                attack.Generate(attacked, x, y);
                trainer.Step(trained, optimizer, x[..32], y[..32], b);
            }
            if (b % every == 0)
            {
                GC.Collect();
                process.Refresh();
                samples.Add((b, process.WorkingSet64 / 1048576.0, DisposeScopeManager.Statistics.ThreadTotalLiveCount));
                Console.WriteLine($"batch {b,5}: resident {samples[^1].Mb,8:F1} MiB, live tensors {samples[^1].LiveTensors}, {watch.Elapsed.TotalSeconds:F0} s");
            }
        }
        // Resident memory of a libtorch process moves by tens of MiB between samples (allocator caches and arenas), so
        // compare medians of windows rather than two single samples, and report the least-squares trend as well.
        int start = Math.Min(500, batches / 4);
        double Median(IEnumerable<double> v) { var s = v.OrderBy(x => x).ToList(); return s.Count == 0 ? double.NaN : s[s.Count / 2]; }
        var early = samples.Where(s => s.Batch >= start && s.Batch < start + batches / 4).Select(s => s.Mb);
        var late = samples.Where(s => s.Batch > batches - batches / 4).Select(s => s.Mb);
        double from = Median(early), to = Median(late);
        var fit = samples.Where(s => s.Batch >= start).ToList();
        double mx = fit.Average(s => (double)s.Batch), my = fit.Average(s => s.Mb);
        double slope = fit.Sum(s => (s.Batch - mx) * (s.Mb - my)) / Math.Max(1e-9, fit.Sum(s => (s.Batch - mx) * (s.Batch - mx)));
        string summary = $"Soak: {batches} batches of FGSM (128 images) + training step (m = 32, k = 16), SmallCnn, {threads} threads, {watch.Elapsed.TotalSeconds:F0} s. " +
            $"Resident memory, median of batches {start}-{start + batches / 4}: {from:F1} MiB; of the last quarter: {to:F1} MiB; growth {(to - from) / from:P1}. " +
            $"Least-squares trend from batch {start}: {slope * 1000:+0.0;-0.0} MiB per 1,000 batches; range {fit.Min(s => s.Mb):F0}-{fit.Max(s => s.Mb):F0} MiB. " +
            $"Live TorchSharp tensors: {samples[0].LiveTensors} at batch {samples[0].Batch}, {samples[^1].LiveTensors} at batch {samples[^1].Batch}.";
        Console.WriteLine(summary);
        if (output.Length > 0) File.WriteAllText(output, summary + Environment.NewLine);
        return 0;
    }
}
