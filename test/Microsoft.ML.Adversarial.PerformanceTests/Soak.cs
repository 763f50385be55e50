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
        var from = samples.FirstOrDefault(s => s.Batch >= Math.Min(500, batches));
        var to = samples[^1];
        double growth = (to.Mb - from.Mb) / from.Mb;
        string summary = $"Soak: {batches} batches of FGSM (128 images) + training step (m = 32, k = 16), SmallCnn, {threads} threads: resident memory " +
            $"{from.Mb:F1} MiB at batch {from.Batch}, {to.Mb:F1} MiB at batch {to.Batch}: growth {growth:P2}; live tensors {from.LiveTensors} -> {to.LiveTensors}.";
        Console.WriteLine(summary);
        if (output.Length > 0) File.WriteAllText(output, summary + Environment.NewLine);
        return 0;
    }
}
