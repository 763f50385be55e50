using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Networks;

/// <summary>
/// Networks at the shapes users run (full width, fp32, their real image side) with BatchNorm statistics of real images,
/// and the three measures of a compute path against the plain path: logits, FGSM pixels, one training step's update.
/// </summary>
internal static class RealShapes
{
    /// <summary>
    /// <paramref name="count"/> RGB images at <paramref name="side"/> x <paramref name="side"/>: seeded smooth random
    /// colour fields (noise at 1/8 of the side, upsampled), textured like photographs rather than flat like upscaled
    /// Fashion-MNIST, whose constant background makes many activations exact ties.
    /// </summary>
    public static Tensor Images(int count, int side)
    {
        using var generator = new Generator(5);
        var coarse = rand(new long[] { count, 3, Math.Max(side / 8, 2), Math.Max(side / 8, 2) }, generator: generator);
        var smooth = nn.functional.interpolate(coarse, size: new long[] { side, side }, mode: InterpolationMode.Bilinear, align_corners: false);
        return (smooth * 0.8 + rand(new long[] { count, 3, side, side }, generator: generator) * 0.2).clamp(0, 1).contiguous();
    }

    /// <summary>
    /// <paramref name="spec"/>'s network with 1,000 classes, seeded, in evaluation mode, each BatchNorm's running
    /// statistics set to its input's statistics on <paramref name="images"/> (layer by layer), so activations have the
    /// scale of a trained network rather than of an untrained one.
    /// </summary>
    public static nn.Module<Tensor, Tensor> Network(ModelSpec spec, Tensor images, int seed = 11)
    {
        manual_seed(seed);
        var model = spec.Create(1000, (3, (int)images.shape[2], (int)images.shape[3]));
        model.eval();
        var removals = new List<Action>();
        foreach (var module in model.modules().OfType<TorchSharp.Modules.BatchNorm2d>())
        {
            var hook = module.register_forward_pre_hook((m, input) =>
            {
                var bn = (TorchSharp.Modules.BatchNorm2d)m;
                using var noGrad = no_grad();
                bn.running_mean!.copy_(input.mean(new long[] { 0, 2, 3 }));
                // Floored: a channel whose few values happen to be equal (dead ReLUs at a small batch) would otherwise get
                // a variance near 0 and amplify rounding a thousandfold, which no trained network does.
                var variance = input.var(new long[] { 0, 2, 3 });
                bn.running_var!.copy_(variance.clamp_min(variance.mean().item<float>() * 0.1 + 1e-3));
                return input;
            });
            removals.Add(hook.remove);
        }
        using (no_grad()) model.call(images);
        foreach (var remove in removals) remove();
        return model;
    }

    /// <summary>
    /// <paramref name="x"/> with each value moved by a few ulps: the plain path on it against the plain path on
    /// <paramref name="x"/> is the fp32 rounding floor of a measure at this shape.
    /// </summary>
    public static Tensor Nudged(Tensor x)
    {
        using var generator = new Generator(99, x.device);
        return x * (1 + (rand(x.shape, generator: generator) - 0.5) * 4.8e-7);
    }

    /// <summary>Largest logit difference relative to the largest plain logit; and the plain path's own on the nudged input.</summary>
    public static (double Fast, double Floor) LogitDifference(nn.Module<Tensor, Tensor> model, ComputeOptions options, Tensor x)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var plain = model.call(x);
        var fast = ComputeModel.Create(model, options).call(x);
        var nudged = model.call(Nudged(x));
        double Relative(Tensor a) => ((a - plain).abs().max() / plain.abs().max()).item<float>();
        return (Relative(fast), Relative(nudged));
    }

    /// <summary>
    /// Fraction of FGSM (eps 16) pixels whose perturbation sign differs between <paramref name="options"/> and the plain
    /// path; and the plain path's own on the nudged input.
    /// </summary>
    public static (double Fast, double Floor) FgsmSignsDiffering(nn.Module<Tensor, Tensor> model, ComputeOptions options, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        Tensor Signs(ComputeOptions compute, Tensor images) =>
            (AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = 16, Compute = compute }).Generate(model, images, y) - images).sign();
        var plain = Signs(ComputeOptions.Plain, x);
        double Differing(Tensor signs) => signs.ne(plain).to(ScalarType.Float64).mean().item<double>();
        return (Differing(Signs(options, x)), Differing(Signs(ComputeOptions.Plain, Nudged(x))));
    }

    /// <summary>
    /// The parameter gradients of one training-mode pass (what an SGD step moves the weights by) under
    /// <paramref name="options"/> against the plain path's, relative L2; and the plain path's own on the nudged input.
    /// BatchNorm statistics are restored between the passes.
    /// </summary>
    public static (double Fast, double Floor) TrainingGradientDifference(nn.Module<Tensor, Tensor> model, ComputeOptions options, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        var saved = model.buffers().Select(b => (b, b.detach().clone())).ToList();
        var parameters = model.parameters().ToArray();
        model.train();
        Tensor[] Gradient(nn.Module<Tensor, Tensor> network, Tensor images)
        {
            var loss = nn.functional.cross_entropy(network.call(images), y);
            var g = autograd.grad(new[] { loss }, parameters, allow_unused: true);
            using (no_grad()) foreach (var (b, value) in saved) b.copy_(value);
            return g.Select((t, i) => t is null || t.IsInvalid ? zeros_like(parameters[i]) : t).ToArray();
        }
        try
        {
            var plain = Gradient(model, x);
            // ||g - plain|| / ||plain|| one parameter at a time (VGG's 138 M parameters need no float64 copy).
            double Relative(Tensor[] g)
            {
                double d = 0, r = 0;
                for (int i = 0; i < g.Length; i++)
                {
                    double di = (g[i] - plain[i]).norm().item<float>(), ri = plain[i].norm().item<float>();
                    d += di * di;
                    r += ri * ri;
                }
                return Math.Sqrt(d / r);
            }
            var fast = Gradient(ComputeModel.Create(model, options, evaluationOnly: false), x);
            return (Relative(fast), Relative(Gradient(model, Nudged(x))));
        }
        finally
        {
            model.eval();
        }
    }

    /// <summary>
    /// One seeded step of adversarial training (FGSM on half of the images, SGD) from the same weights under
    /// <paramref name="options"/> and under <paramref name="reference"/>: relative L2 difference of the two weight updates.
    /// </summary>
    public static double TrainingStepDifference(ModelSpec spec, ComputeOptions options, ComputeOptions reference, Tensor x, Tensor y)
    {
        using var scope = NewDisposeScope();
        var data = ImageSet.FromFloats(x.contiguous().data<float>().ToArray(), y.data<long>().Select(v => (uint)v).ToArray(),
            Enumerable.Range(0, 1000).Select(i => i.ToString()).ToArray(), (3, (int)x.shape[2], (int)x.shape[3]), classNamesAreIndices: true);
        Tensor Update(ComputeOptions compute)
        {
            var model = Network(spec, x);
            var before = model.parameters().Select(p => p.detach().clone().flatten()).ToList();
            int m = (int)x.shape[0];
            var o = new AdversarialTrainingOptions { BatchSize = m, AdversarialPerBatch = m / 2, Method = "fgsm", MaxSteps = 1, Seed = 3,
                Optimizer = OptimizerKind.Sgd, LearningRate = 0.1, Compute = compute, ProgressEvery = 1000 };
            new AdversarialTrainer(o).Train(model, data);
            return cat(model.parameters().Select((p, i) => p.detach().flatten() - before[i]).ToList(), 0).to(ScalarType.Float64);
        }
        var expected = Update(reference);
        return ((Update(options) - expected).norm() / expected.norm()).item<double>();
    }
}
