using System.Diagnostics;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training.Distributed;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Issue 18's allreduce figures (docs/scale.md): the time of the trainer's gradient averaging (one in-place allreduce of
/// a flat float buffer, plus the copies in and out) for SmallCnn's gradients and for a buffer the size of Inception v3's
/// (23.8 M floats). Launch under MPI:
/// <c>mpirun -np 2 dotnet test/Microsoft.ML.Adversarial.PerformanceTests/bin/Release/net10.0/Microsoft.ML.Adversarial.PerformanceTests.dll allreduce</c>.
/// Rank 0 prints one line per buffer: median and 90th percentile over the rounds.
/// </summary>
internal static class AllreduceBench
{
    public static int Run(int rounds, long inceptionFloats)
    {
        var replicas = Replicas.Join();
        using var smallCnn = new SmallCnn();
        var cases = new List<(string Name, List<TorchSharp.Modules.Parameter> Parameters)>
        {
            ("SmallCnn gradients", smallCnn.parameters().ToList()),
            ($"Inception v3-sized buffer", new List<TorchSharp.Modules.Parameter> { new(zeros(inceptionFloats)) }),
        };
        foreach (var (name, parameters) in cases)
        {
            foreach (var p in parameters) p.grad = ones_like(p);
            long floats = parameters.Sum(p => p.numel());
            var times = new List<double>();
            // The trainer's path with one bucket: copy into the flat buffer, one allreduce, divide, copy back.
            using var buckets = new GradientBuckets(parameters, 0, replicas.Size, replicas.SumInPlace, overlap: false);
            for (int i = 0; i < rounds + 2; i++)
            {
                var watch = Stopwatch.StartNew();
                buckets.BeginStep(watchBackward: false);
                buckets.Finish();
                if (i >= 2) times.Add(watch.Elapsed.TotalMilliseconds); // two warm-up rounds
            }
            times.Sort();
            if (replicas.Rank == 0)
                Console.WriteLine($"{name}: {floats:N0} floats ({floats * 4 / 1e6:F1} MB), {replicas.Size} ranks: median {times[times.Count / 2]:F2} ms, " +
                                  $"p90 {times[(int)(times.Count * 0.9)]:F2} ms over {rounds} allreduces (copies in and out included)");
        }
        return 0;
    }
}
