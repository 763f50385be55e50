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

    private static SmallCnn TrainCnn() => Testing.ReferenceModels.TrainSmallCnn(TestData.Train(3000));

    public static double Accuracy(torch.nn.Module<Tensor, Tensor> model, Tensor images, Tensor labels)
    {
        using var scope = torch.NewDisposeScope();
        using var _ = torch.no_grad();
        return model.call(images).argmax(1).eq(labels).to(ScalarType.Float64).mean().item<double>();
    }
}
