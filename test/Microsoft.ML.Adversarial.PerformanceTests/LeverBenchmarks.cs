using Microsoft.ML.Adversarial.Models;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using TorchSharp;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Each speed lever of issue 16, before and after, on the workloads it serves: the plain path (contiguous, fp32,
/// BatchNorm unfolded), channels-last input, BatchNorm folded, and bfloat16; each under glibc's default allocator
/// (ADVML_MALLOC_TUNING=0) and with the library's allocator settings (NativeAllocator). A regression of any lever shows
/// as its row moving towards the plain row.
/// <code>dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- bench --filter '*LeverBenchmarks*'</code>
/// </summary>
[Config(typeof(AllocatorJobs))]
[MemoryDiagnoser]
public class LeverBenchmarks
{
    private Workload _w = null!;

    /// <summary>Two jobs (ShortRun: 3 warm-ups, 3 iterations; these workloads take 0.1-1 s an operation): the allocator as glibc leaves it, and as the library tunes it.</summary>
    private sealed class AllocatorJobs : ManualConfig
    {
        public AllocatorJobs()
        {
            AddJob(Job.ShortRun.WithEnvironmentVariable("ADVML_MALLOC_TUNING", "0").WithId("glibc malloc"));
            AddJob(Job.ShortRun.WithId("tuned malloc"));
        }
    }

    /// <summary>The networks (the torchvision ResNet-50 stands for the imported architectures).</summary>
    [Params("inception", "resnet50")]
    public string Network { get; set; } = "inception";

    /// <summary>The workloads the levers serve: attacks and the adversarial training step.</summary>
    [Params("fgsm", "train-step")]
    public string Workload { get; set; } = "fgsm";

    /// <summary>Which levers are on.</summary>
    [Params("plain", "channels-last", "channels-last+fold", "bf16")]
    public string Compute { get; set; } = "plain";

    [GlobalSetup]
    public void Setup()
    {
        torch.set_num_threads(Environment.ProcessorCount);
        var compute = Compute switch
        {
            "plain" => ComputeOptions.Plain,
            "channels-last" => new ComputeOptions { FoldBatchNorm = false },
            "channels-last+fold" => ComputeOptions.Default,
            "bf16" => ComputeOptions.BFloat16,
            _ => throw new ArgumentException($"Unknown compute '{Compute}'."),
        };
        _w = new Workload(Workload, Network, Harness.PlanFor(Network, Workload).Batch, compute);
        // The accuracy gate: a lever whose outputs differ from the plain path's gets no time.
        var verdict = _w.Verdict();
        Console.WriteLine($"// gate: {Network} {Workload} {Compute}: {PerformanceTests.Workload.Gate(verdict)} ({verdict})");
        if (verdict.Outcome == FastPathOutcome.PlainPath)
            throw new InvalidOperationException($"{Network} {Workload} {Compute}: outputs differ from the plain path on this CPU ({verdict}); no time counts.");
    }

    [Benchmark]
    public void Run() => _w.Run();

    [GlobalCleanup]
    public void Cleanup() => _w.Dispose();
}
