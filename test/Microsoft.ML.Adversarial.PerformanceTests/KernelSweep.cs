using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Which convolution kernels give wrong results on this CPU (issue 25): 1x1 and 3x3 convolutions from 64 channels to
/// 1..N output channels, batch x side around oneDNN's N*H*W = 578 threshold (289, 578, 10,658), fp32 and bf16,
/// channels-last input against NCHW input, forward output and input gradient. Prints the output-channel counts whose
/// relative L2 difference exceeds the precision's bound (fp32 1e-4: reorderings give ~1e-7; bf16 2e-2).
/// </summary>
internal static class KernelSweep
{
    public static int Run(int maxChannels, int threads)
    {
        set_num_threads(threads);
        Console.WriteLine($"CPU: {FastPathCheck.Cpu}; TorchSharp {typeof(torch).Assembly.GetName().Version}; threads {threads}; " +
                          $"ONEDNN_MAX_CPU_ISA={Environment.GetEnvironmentVariable("ONEDNN_MAX_CPU_ISA") ?? "(unset)"}");
        int wrongTotal = 0;
        foreach (var dtype in new[] { ScalarType.Float32, ScalarType.BFloat16 })
            foreach (int kernel in new[] { 1, 3 })
                foreach (var (n, side) in new[] { (1, 17), (2, 17), (2, 73) })
                {
                    double bound = dtype == ScalarType.Float32 ? 1e-4 : 2e-2;
                    var wrongForward = new List<int>();
                    var wrongGradient = new List<int>();
                    for (int cout = 1; cout <= maxChannels; cout++)
                    {
                        using var scope = NewDisposeScope();
                        using var generator = new Generator((ulong)cout);
                        var x = randn(new long[] { n, 64, side, side }, generator: generator).to(dtype);
                        var w = (randn(new long[] { cout, 64, kernel, kernel }, generator: generator) * 0.1).to(dtype);
                        var (yPlain, gPlain) = Conv(x.contiguous(), w, kernel);
                        var (yLast, gLast) = Conv(ComputeModel.ToChannelsLast(x), w, kernel);
                        if (Relative(yLast, yPlain) > bound) wrongForward.Add(cout);
                        if (Relative(gLast, gPlain) > bound) wrongGradient.Add(cout);
                    }
                    wrongTotal += wrongForward.Count + wrongGradient.Count;
                    Console.WriteLine($"{(dtype == ScalarType.Float32 ? "fp32" : "bf16")} {kernel}x{kernel} conv, 64 -> 1..{maxChannels} channels, " +
                                      $"N={n} H=W={side} (N*H*W {n * side * side}): channels-last wrong for output channels " +
                                      $"forward [{Ranges(wrongForward)}], input gradient [{Ranges(wrongGradient)}]");
                }
        Console.WriteLine(wrongTotal == 0 ? "No wrong kernel found on this CPU." : $"{wrongTotal} wrong (shape, direction) cases on this CPU: the library's run-time check (ComputeOptions.VerifyFastPath) keeps them out of results.");
        return 0;
    }

    private static (Tensor Output, Tensor InputGradient) Conv(Tensor x, Tensor w, int kernel)
    {
        var input = x.detach().requires_grad_(true);
        var y = nn.functional.conv2d(input, w, padding: new long[] { kernel / 2, kernel / 2 });
        using var generator = new Generator(1);
        var r = randn(y.shape, generator: generator).to(y.dtype);
        var g = autograd.grad(new[] { (y * r).sum() }, new[] { input })[0];
        return (y.detach(), g);
    }

    private static double Relative(Tensor a, Tensor b)
    {
        var a64 = a.to(ScalarType.Float64);
        var b64 = b.to(ScalarType.Float64);
        return ((a64 - b64).norm() / b64.norm()).item<double>();
    }

    private static string Ranges(List<int> values)
    {
        var parts = new List<string>();
        for (int i = 0; i < values.Count;)
        {
            int j = i;
            while (j + 1 < values.Count && values[j + 1] == values[j] + 1) j++;
            parts.Add(i == j ? $"{values[i]}" : $"{values[i]}-{values[j]}");
            i = j + 1;
        }
        return string.Join(", ", parts);
    }
}
