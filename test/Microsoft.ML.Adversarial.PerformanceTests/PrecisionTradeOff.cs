using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// What bfloat16 changes on a trained model (issue 16's trade-off table): the fraction of FGSM perturbation signs that
/// differ from fp32 (among pixels both moved), clean predictions that differ, and accuracy under FGSM and step l.l.
/// at each precision, on Fashion-MNIST test images.
/// <code>dotnet run -c Release --project test/Microsoft.ML.Adversarial.PerformanceTests -- precision --model m.advml [--count 2000]</code>
/// </summary>
internal static class PrecisionTradeOff
{
    public static int Run(string modelPath, int count, int threads)
    {
        torch.set_num_threads(threads);
        var (model, description) = ModelIO.Load(modelPath);
        model.eval();
        var data = FashionMnist.Load(new FashionMnistOptions { Split = FashionMnistSplit.Test, Count = count });
        Console.WriteLine($"{Path.GetFileName(modelPath)} ({description.Spec}), {count} Fashion-MNIST test images, {threads} threads.");
        Console.WriteLine();
        Console.WriteLine("| method | eps | signs differing (bf16 vs fp32) | accuracy fp32 | accuracy bf16 | difference (points) |");
        Console.WriteLine("| --- | --- | --- | --- | --- | --- |");
        long cleanDiffer = 0, rows = 0;
        // Prepared once: the weights do not change here.
        using var runner32 = ComputeModel.Create(model, ComputeOptions.Default);
        using var runner16 = ComputeModel.Create(model, ComputeOptions.BFloat16);
        foreach (var method in new[] { "fgsm", "step-ll" })
            foreach (double eps in new[] { 8.0, 16.0 })
            {
                var fp32 = AttackRegistry.Create(method, new AttackOptions { Epsilon = eps, Compute = ComputeOptions.Default });
                var bf16 = AttackRegistry.Create(method, new AttackOptions { Epsilon = eps, Compute = ComputeOptions.BFloat16 });
                long differ = 0, moved = 0, right32 = 0, right16 = 0;
                for (int start = 0; start < data.RowCount; start += 256)
                {
                    using var scope = NewDisposeScope();
                    var (x, y) = data.ToTensors(start, Math.Min(256, data.RowCount - start));
                    var a32 = fp32.Generate(runner32, x, y);
                    var a16 = bf16.Generate(runner16, x, y);
                    var s32 = (a32 - x).sign();
                    var s16 = (a16 - x).sign();
                    var both = s32.ne(0).logical_and(s16.ne(0));
                    differ += s32.ne(s16).logical_and(both).sum().item<long>();
                    moved += both.sum().item<long>();
                    using var noGrad = no_grad();
                    // Each precision scores its own examples, as an evaluation at that precision does.
                    right32 += runner32.call(a32).argmax(1).eq(y).sum().item<long>();
                    right16 += runner16.call(a16).argmax(1).eq(y).sum().item<long>();
                    if (method == "fgsm" && eps == 8.0)
                    {
                        cleanDiffer += runner32.call(x).argmax(1).ne(runner16.call(x).argmax(1)).sum().item<long>();
                        rows += y.shape[0];
                    }
                }
                double acc32 = (double)right32 / data.RowCount, acc16 = (double)right16 / data.RowCount;
                Console.WriteLine($"| {method} | {eps} | {(double)differ / moved:P2} | {acc32:P1} | {acc16:P1} | {(acc16 - acc32) * 100:+0.0;-0.0;0.0} |");
            }
        Console.WriteLine();
        Console.WriteLine($"Clean predictions that differ between fp32 and bf16: {cleanDiffer} of {rows} ({(double)cleanDiffer / rows:P2}).");
        return 0;
    }
}
