using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Adversarial.Training.Distributed;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Issue 30's overlap figures (docs/scale.md): training steps (forward, loss, backward, gradient averaging, SGD step) of
/// SmallCnn and of a stack of Linear layers with Inception v3's 23.8 M parameters, with the gradients averaged in one
/// buffer after the backward pass, in buckets after it, and in buckets overlapped with it; and, for reference, with no
/// allreduce at all (the copies only). Launch under MPI:
/// <c>OMP_NUM_THREADS=1 mpirun -np 2 dotnet test/Microsoft.ML.Adversarial.PerformanceTests/bin/Release/net10.0/Microsoft.ML.Adversarial.PerformanceTests.dll overlap</c>.
/// Rank 0 prints one line per configuration: median and 90th percentile step time, allreduce time per step, the
/// share of it hidden behind the backward pass, the time from the end of the backward pass to averaged gradients, and
/// the median allreduce time per bucket.
/// </summary>
internal static class OverlapBench
{
    public static int Run(int rounds, long floats, double bucketMb, double smallCnnBucketMb, int batch, string cases)
    {
        var replicas = Replicas.Join();
        var all = new List<(string Name, Func<Module<Tensor, Tensor>> Make, Func<(Tensor X, Tensor Y)> Batch, double BucketMb)>();
        if (cases.Contains("smallcnn", StringComparison.Ordinal))
            all.Add(("SmallCnn", () => new SmallCnn(), () => (rand(batch, 1, 28, 28), randint(10, batch)), smallCnnBucketMb));
        if (cases.Contains("linear", StringComparison.Ordinal))
        {
            // Eight square Linear layers (width w: 8 (w^2 + w) parameters) with ReLU between them, about `floats` parameters.
            int width = (int)Math.Round(Math.Sqrt(floats / 8.0));
            all.Add(($"8 x Linear({width}, {width})", () => LinearStack(width, 8), () => (rand(batch, width), randint(width, batch)), bucketMb));
        }
        foreach (var (name, make, makeBatch, mb) in all)
        {
            var configurations = new List<(string Label, double Mb, bool Overlap, bool Communicate)>
            {
                ("no allreduce (copies only)", mb, false, false),
                ("one buffer after backward", 0, false, true),
                ($"{mb} MB buckets after backward", mb, false, true),
                ($"{mb} MB buckets overlapped", mb, true, true),
            };
            foreach (var (label, bucketSize, overlap, communicate) in configurations)
            {
                manual_seed(1);
                using var model = make();
                var optimizer = new HeldScalarSgd(model.parameters(), 0.001, 0, 0);
                manual_seed(2 + replicas.Rank);
                var (x, y) = makeBatch();
                FloatAllreduce sum = communicate ? replicas.SumInPlace : _ => { };
                using var buckets = new GradientBuckets(model.parameters(), bucketSize, replicas.Size, sum, overlap && replicas.Size > 1 && replicas.AllowsCommunicationThread);
                buckets.Watch(model);
                var times = new List<double>();
                var sync = new double[1];
                for (int i = 0; i < rounds + 2; i++)
                {
                    replicas.Sum(sync); // every rank starts the step together
                    var watch = Stopwatch.StartNew();
                    using (var scope = NewDisposeScope())
                    {
                        optimizer.zero_grad();
                        buckets.BeginStep(watchBackward: true);
                        var loss = functional.cross_entropy(model.call(x), y);
                        buckets.EndForward();
                        loss.backward();
                        buckets.Finish();
                        optimizer.step();
                    }
                    if (i >= 2) times.Add(watch.Elapsed.TotalMilliseconds);
                    else buckets.Statistics.Reset(); // two warm-up steps
                }
                times.Sort();
                var s = buckets.Statistics;
                var bucketMs = s.BucketMs.OrderBy(t => t).ToList();
                long parameters = model.parameters().Sum(p => p.numel());
                if (replicas.Rank == 0)
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"{name} ({parameters:N0} floats, batch {batch}), {replicas.Size} ranks, {label}: step median {times[times.Count / 2]:F1} ms, p90 {times[(int)(times.Count * 0.9)]:F1} ms; " +
                        $"{buckets.Buckets.Count} bucket(s), {(double)s.EarlyBuckets / s.Steps:F1} started during backward; allreduce {s.CommunicationMs / s.Steps:F1} ms/step, " +
                        $"{s.OverlapFraction:P0} hidden; after backward {s.FinishMs / s.Steps:F1} ms/step; per bucket median {bucketMs[bucketMs.Count / 2]:F2} ms, max {bucketMs[^1]:F2} ms"));
                x.Dispose();
                y.Dispose();
            }
        }
        return 0;
    }

    private static Module<Tensor, Tensor> LinearStack(int width, int layers)
    {
        var modules = new List<Module<Tensor, Tensor>>();
        for (int i = 0; i < layers; i++)
        {
            modules.Add(Linear(width, width));
            if (i < layers - 1) modules.Add(ReLU());
        }
        return Sequential(modules);
    }
}
