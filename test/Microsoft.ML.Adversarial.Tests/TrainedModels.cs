using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests;

/// <summary>A SmallCnn trained once per test run on a Fashion-MNIST subset, for attack properties.</summary>
internal static class TrainedModels
{
    private static readonly Lazy<SmallCnn> Cnn = new(TrainCnn);
    private static readonly Lazy<ImageSet> Eval = new(() => TestData.Test(256));

    public static SmallCnn SmallCnn => Cnn.Value;

    /// <summary>256 class-balanced test images.</summary>
    public static ImageSet EvalData => Eval.Value;

    public static (Tensor Images, Tensor Labels) EvalBatch(int count = 256) => EvalData.ToTensors(0, count);

    private static SmallCnn TrainCnn()
    {
        torch.manual_seed(7);
        var model = new SmallCnn(rho: 0.5);
        var data = TestData.Train(3000);
        var optimizer = torch.optim.Adam(model.parameters(), lr: 2e-3);
        var rng = new Random(7);
        model.train();
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var order = Enumerable.Range(0, data.RowCount).ToArray();
            rng.Shuffle(order);
            for (int start = 0; start < order.Length; start += 64)
            {
                using var scope = torch.NewDisposeScope();
                var (x, y) = data.ToTensors(order.AsSpan(start, Math.Min(64, order.Length - start)));
                optimizer.zero_grad();
                var loss = torch.nn.functional.cross_entropy(model.call(x), y);
                loss.backward();
                optimizer.step();
            }
        }
        model.eval();
        optimizer.zero_grad();
        foreach (var p in model.parameters()) p.grad = null;
        return model;
    }

    public static double Accuracy(torch.nn.Module<Tensor, Tensor> model, Tensor images, Tensor labels)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        return model.call(images).argmax(1).eq(labels).to(ScalarType.Float64).mean().item<double>();
    }
}
