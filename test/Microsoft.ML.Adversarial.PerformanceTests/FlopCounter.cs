using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Floating-point operations of a network, counted from the network itself: forward hooks on every Conv2d and Linear
/// record 2 x multiply-accumulates of one forward pass at batch 1 (bias adds, BatchNorm, activations and pooling are
/// left out, as in the published GMAC figures: Inception v3 5.7 GMAC at 299, ResNet-50 4.1 GMAC at 224).
/// </summary>
internal static class FlopCounter
{
    /// <summary>Forward FLOPs per image of the convolutions and dense layers, and of the first of them (the one fed the
    /// images, whose input gradient a training step does not need).</summary>
    internal sealed record Count(double Forward, double FirstLayer, int Layers, (int C, int H, int W) Shape);

    /// <summary>The networks the roofline knows: what to build and the image shape it takes (the same as <see cref="Workload"/>).</summary>
    public static (nn.Module<Tensor, Tensor> Model, (int C, int H, int W) Shape) Network(string name) => name switch
    {
        "smallcnn" => (new SmallCnn(), (1, 28, 28)),
        "inception" => (new InceptionV3(classes: 1000, auxLogits: false), (3, 299, 299)),
        "resnet50" => (new ModelSpec(ModelArchitecture.ResNet50).Create(1000, (3, 224, 224)), (3, 224, 224)),
        _ => throw new ArgumentException($"--networks: unknown network '{name}' for the roofline. Use smallcnn, inception or resnet50."),
    };

    /// <summary>Counts one forward pass of <paramref name="name"/> at batch 1.</summary>
    public static Count Forward(string name)
    {
        var (model, shape) = Network(name);
        using (model)
            return Forward(model, shape);
    }

    /// <summary>Counts one forward pass of <paramref name="model"/> on one image of <paramref name="shape"/> (evaluation mode, no graph).</summary>
    public static Count Forward(nn.Module<Tensor, Tensor> model, (int C, int H, int W) shape)
    {
        var perLayer = new List<double>();
        var removers = new List<Action>();
        foreach (var module in model.modules())
        {
            // Conv2d: output [1, Cout, Hout, Wout], weight [Cout, Cin / groups, kh, kw]: MACs = numel(output) * (Cin / groups) * kh * kw.
            if (module is TorchSharp.Modules.Conv2d conv)
            {
                var hook = conv.register_forward_hook((_, _, output) =>
                {
                    var w = conv.weight!.shape;
                    perLayer.Add(2.0 * output.numel() * w[1] * w[2] * w[3]);
                    return output;
                });
                removers.Add(hook.remove);
            }
            // Linear: output [1, out], weight [out, in]: MACs = numel(output) * in.
            else if (module is TorchSharp.Modules.Linear linear)
            {
                var hook = linear.register_forward_hook((_, _, output) =>
                {
                    perLayer.Add(2.0 * output.numel() * linear.weight!.shape[1]);
                    return output;
                });
                removers.Add(hook.remove);
            }
        }
        try
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            model.eval();
            model.call(zeros(1, shape.C, shape.H, shape.W));
        }
        finally
        {
            foreach (var remove in removers) remove();
        }
        if (perLayer.Count == 0)
            throw new InvalidOperationException("No Conv2d or Linear layer ran through a forward hook; the network calls its layers with forward() instead of call().");
        return new Count(perLayer.Sum(), perLayer[0], perLayer.Count, shape);
    }
}
