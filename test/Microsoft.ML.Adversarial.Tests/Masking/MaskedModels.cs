using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Tests.Masking;

/// <summary>
/// Models built to mask their gradients in the ways the literature names (Athalye et al., 2018), each around the same
/// trained SmallCnn so its true robustness is the honest network's: a rounding input layer (zero gradient), a saturated
/// softmax (zero gradient of the cross-entropy), a noisy-gradient layer (random backward pass) and a random input
/// transform (a random model).
/// </summary>
internal static class MaskedModels
{
    /// <summary>The trained network behind a named input layer: <c>net(layer(x))</c>, the layer reachable as "input".</summary>
    public static Module<Tensor, Tensor> WithInputLayer(Module<Tensor, Tensor> layer, Module<Tensor, Tensor> net)
        => Sequential(("input", layer), ("net", net));

    /// <summary>Rounds each pixel to 256 levels: the values of 8-bit images stay as they are, the gradient is zero everywhere.</summary>
    public static Module<Tensor, Tensor> Rounding(Module<Tensor, Tensor> net) => WithInputLayer(new RoundingLayer(), net);

    /// <summary>The network's logits times 10,000: the same predictions, a softmax saturated to 0 and 1 in float32, so a zero cross-entropy gradient.</summary>
    public static Module<Tensor, Tensor> SaturatedSoftmax(Module<Tensor, Tensor> net) => Sequential(("net", net), ("scale", new Scale(1e4)));

    /// <summary>The identity forward; backward adds Gaussian noise <paramref name="noise"/> times the gradient's own RMS per image.</summary>
    public static Module<Tensor, Tensor> NoisyGradient(Module<Tensor, Tensor> net, double noise = 4) => WithInputLayer(new NoisyGradientLayer(noise), net);

    /// <summary>Adds Gaussian noise of standard deviation <paramref name="sigma"/> to the input on every pass: a random model.</summary>
    public static Module<Tensor, Tensor> RandomInput(Module<Tensor, Tensor> net, double sigma = 0.02) => WithInputLayer(new RandomInputLayer(sigma), net);

    internal sealed class RoundingLayer : Module<Tensor, Tensor>
    {
        public RoundingLayer() : base("rounding") { }
        public override Tensor forward(Tensor x) => x.mul(255.0).round().div(255.0);
    }

    private sealed class Scale : Module<Tensor, Tensor>
    {
        private readonly double _factor;
        public Scale(double factor) : base("scale") => _factor = factor;
        public override Tensor forward(Tensor x) => x.mul(_factor);
    }

    private sealed class RandomInputLayer : Module<Tensor, Tensor>
    {
        private readonly double _sigma;
        public RandomInputLayer(double sigma) : base("random-input") => _sigma = sigma;
        public override Tensor forward(Tensor x) => x.add(torch.randn_like(x).mul(_sigma));
    }

    private sealed class NoisyGradientLayer : Module<Tensor, Tensor>
    {
        private readonly double _noise;
        public NoisyGradientLayer(double noise) : base("noisy-gradient") => _noise = noise;
        public override Tensor forward(Tensor x) => NoisyBackward.Apply(x, _noise);
    }

    /// <summary>Identity with a backward pass that drowns the gradient in noise (a custom autograd function).</summary>
    private sealed class NoisyBackward : torch.autograd.SingleTensorFunction<NoisyBackward>
    {
        public override string Name => nameof(NoisyBackward);

        public static Tensor Apply(Tensor x, double noise) => apply(x, noise);

        public override Tensor forward(torch.autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("noise", vars[1]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(torch.autograd.AutogradContext ctx, Tensor gradOutput)
        {
            double noise = (double)ctx.get_data("noise");
            var rms = gradOutput.flatten(1).pow(2).mean(new long[] { 1 }).sqrt().view(-1, 1, 1, 1);
            return new List<Tensor> { gradOutput.add(torch.randn_like(gradOutput).mul(rms).mul(noise)), null! };
        }
    }
}
