using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// One validated batch of an attack: the clean images, labels and per-example epsilon, and the operations the
/// methods are written in (input gradients, least-likely classes, steps in pixel units, projection).
/// Lives inside the dispose scope of <see cref="Attack.Generate"/>.
/// </summary>
public sealed class AttackBatch
{
    private readonly Attack _attack;
    private readonly Tensor? _labels;
    private readonly Tensor _lower, _upper, _unitsPerPixel;
    private long _classCount = -1;

    internal AttackBatch(Attack attack, Module<Tensor, Tensor> model, Tensor clean, Tensor? labels, Tensor epsilon, Generator? generator)
    {
        _attack = attack;
        Model = model;
        Clean = clean;
        _labels = labels;
        Epsilon = epsilon;
        Generator = generator;
        // Made here, in the caller's scope, so loops with scopes of their own never dispose them.
        _unitsPerPixel = Range.UnitsPerPixelTensor(clean);
        var radius = PerExample(epsilon) * _unitsPerPixel;
        _lower = torch.maximum(clean.Minus(radius), Range.MinTensor(clean));
        _upper = torch.minimum(clean.Plus(radius), Range.MaxTensor(clean));
    }

    /// <summary>The same batch with another (uniform) epsilon; gradients already computed stay valid.</summary>
    internal AttackBatch WithEpsilon(double epsilon)
    {
        return new AttackBatch(_attack, Model, Clean, _labels, HeldScalars.Full(Count, epsilon, Clean.dtype, Clean.device), Generator)
        {
            _classCount = _classCount,
        };
    }

    /// <summary>The examples <paramref name="index"/> (int64 [n]) of this batch, attacked on <paramref name="labels"/> ([n]).</summary>
    internal AttackBatch Subset(Tensor index, Tensor labels)
        => new(_attack, Model, Clean.index_select(0, index), labels, Epsilon.index_select(0, index), Generator);

    /// <summary>The model under attack (in evaluation mode while the attack runs).</summary>
    public Module<Tensor, Tensor> Model { get; }
    /// <summary>The clean images, detached.</summary>
    public Tensor Clean { get; }
    /// <summary>Epsilon per example [N], in pixel units.</summary>
    public Tensor Epsilon { get; }
    /// <summary>The attack's seeded generator, or null for TorchSharp's global one.</summary>
    public Generator? Generator { get; }
    /// <summary>The input range the attack clips to and converts epsilon with.</summary>
    public InputRange Range => _attack.Options.InputRange;
    /// <summary>Number of examples in the batch.</summary>
    public long Count => Clean.shape[0];
    /// <summary>True when the caller gave the true labels.</summary>
    public bool HasLabels => _labels is not null;

    /// <summary>The true labels [N]; an error naming the attack when none were given.</summary>
    public Tensor TrueLabels => _labels ?? throw new ArgumentException($"Attack '{_attack.Name}' needs the true labels; pass them to Generate.");

    /// <summary>Number of classes, known after the first forward pass.</summary>
    public long ClassCount => _classCount >= 0 ? _classCount : throw new InvalidOperationException("The class count is known after the first forward pass.");

    /// <summary>Logits of <paramref name="x"/> without building a graph.</summary>
    public Tensor Logits(Tensor x)
    {
        using var _ = torch.no_grad();
        return CheckLogits(Forward(x));
    }

    private Tensor Forward(Tensor x)
    {
        try
        {
            return Model.call(x);
        }
        catch (System.Runtime.InteropServices.ExternalException ex)
        {
            throw new ArgumentException(
                $"The model rejected images of shape [{string.Join(", ", x.shape)}]: {ex.Message.Split('\n')[0]}. " +
                "Check that the images have the shape (channels, height, width) the model was built for.", ex);
        }
    }

    /// <summary>
    /// Gradient of <c>loss(model(x))</c> with respect to <paramref name="x"/> only: the one place attacks differentiate
    /// the model, so EOT (the mean over <see cref="AttackOptions.EotSamples"/> passes) and BPDA (the identity as the
    /// backward pass of <see cref="AttackOptions.BpdaLayers"/>) reach every gradient method.
    /// </summary>
    /// <param name="x">The point to differentiate at.</param>
    /// <param name="lossOfLogits">Scalar loss of the logits; targets it derives from the logits must be detached. With EOT
    /// it is called once per pass, the last pass's values being those a caller keeps (as the reference AutoAttack does).</param>
    public Tensor InputGradient(Tensor x, Func<Tensor, Tensor> lossOfLogits)
    {
        using var grad = torch.enable_grad();
        using var bpda = Bpda.Apply(Model, _attack.Options.BpdaLayers, _attack.Name);
        int passes = _attack.Options.EotSamples;
        Tensor? sum = null;
        for (int pass = 0; pass < passes; pass++)
        {
            var g = OneGradient(x, lossOfLogits);
            sum = sum is null ? g : sum.Plus(g);
        }
        return passes == 1 ? sum! : sum!.DividedBy(passes);
    }

    private Tensor OneGradient(Tensor x, Func<Tensor, Tensor> lossOfLogits)
    {
        var input = x.detach().requires_grad_(true);
        var logits = CheckLogits(Forward(input));
        var loss = lossOfLogits(logits);
        if (!loss.detach().isfinite().item<bool>())
            throw new InvalidOperationException(
                $"Attack '{_attack.Name}': the model's outputs are NaN or infinite for this batch, so no meaningful adversarial example exists. " +
                "Check the model's weights (a diverged training run) and the inputs.");
        if (!loss.requires_grad)
            throw new InvalidOperationException(
                $"Attack '{_attack.Name}': the loss does not depend on the input through a differentiable path " +
                "(the model detaches its input, runs under no_grad, or its output does not require grad). Attacks need a differentiable model; " +
                "for a layer that breaks the path (rounding, a lookup), name it in AttackOptions.BpdaLayers.");
        try
        {
            return torch.autograd.grad(new[] { loss }, new[] { input })[0];
        }
        catch (System.Runtime.InteropServices.ExternalException ex)
        {
            throw new InvalidOperationException($"Attack '{_attack.Name}': the input has no gradient path to the loss ({ex.Message.Split('\n')[0]}).", ex);
        }
    }

    /// <summary><c>grad_X J(X, target)</c> at the clean images: the gradient most methods are written in.</summary>
    public Tensor LossGradient(Tensor target) => InputGradient(Clean, logits => CrossEntropy(logits, target));

    /// <summary>Summed cross-entropy: per-example gradients are not scaled by the batch size.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets) => F.cross_entropy(logits, targets, reduction: Reduction.Sum);

    /// <summary>The class each example's model output finds least likely: <c>argmin_y p(y | x)</c>.</summary>
    public static Tensor LeastLikely(Tensor logits) => logits.detach().argmin(1);

    /// <summary>The class the model predicts.</summary>
    public static Tensor Predicted(Tensor logits) => logits.detach().argmax(1);

    /// <summary>A uniformly random class other than each example's true class.</summary>
    public Tensor RandomOtherClass(long classCount)
    {
        var y = TrueLabels;
        var r = torch.randint(0, classCount - 1, y.shape, dtype: ScalarType.Int64, device: RandomDevice.For(Generator, y.device, $"Attack '{_attack.Name}'"), generator: Generator);
        return r.Plus((r >= y).to(ScalarType.Int64));
    }

    /// <summary>Standard normal noise shaped like the images, from the attack's generator.</summary>
    public Tensor Normal(long[]? shape = null)
        => torch.randn(shape ?? Clean.shape, dtype: Clean.dtype, device: RandomDevice.For(Generator, Clean.device, $"Attack '{_attack.Name}'"), generator: Generator);

    /// <summary>Uniform noise in [0, 1) shaped like the images, from the attack's generator.</summary>
    public Tensor Uniform(long[]? shape = null)
        => torch.rand(shape ?? Clean.shape, dtype: Clean.dtype, device: RandomDevice.For(Generator, Clean.device, $"Attack '{_attack.Name}'"), generator: Generator);

    /// <summary>Model units per pixel value, broadcastable over the images.</summary>
    public Tensor UnitsPerPixel => _unitsPerPixel;

    /// <summary>Per-example values [N] viewed as [N, 1, 1, ...] to broadcast over the images.</summary>
    public Tensor PerExample(Tensor values)
    {
        var shape = new long[Clean.dim()];
        Array.Fill(shape, 1L);
        shape[0] = Count;
        return values.view(shape);
    }

    /// <summary>
    /// A step of <paramref name="pixels"/> pixel values ([N] or a scalar) along <paramref name="direction"/>, which is
    /// expressed in pixel units per unit of step, converted to the model's units.
    /// </summary>
    public Tensor Step(Tensor pixels, Tensor direction)
        => (pixels.dim() == 0 ? pixels : PerExample(pixels)) * UnitsPerPixel * direction;

    /// <summary>Gradient expressed per pixel value (the chain rule through the range's scale).</summary>
    public Tensor InPixelUnits(Tensor gradient) => gradient * UnitsPerPixel;

    /// <summary>Clips to the epsilon ball (L-inf) around the clean images and to the valid input range.</summary>
    public Tensor Project(Tensor x) => torch.minimum(torch.maximum(x, _lower), _upper);

    /// <summary>
    /// Clips to the L2 ball of radius epsilon (pixel units) around the clean images, then to the valid input range
    /// (clipping only shrinks each coordinate's change, so the result stays in the ball).
    /// </summary>
    public Tensor ProjectL2(Tensor x)
    {
        var deltaPixels = x.Minus(Clean) / UnitsPerPixel;
        var factor = (Epsilon / L2Norm(deltaPixels).AtLeast(1e-12)).AtMost(1);
        return ClipToRange(Clean.Plus(deltaPixels * PerExample(factor) * UnitsPerPixel));
    }

    /// <summary>The direction of steepest L2 ascent per pixel value, <c>g' / ||g'||_2</c> with g' = <see cref="InPixelUnits"/>(g), for <see cref="Step"/>.</summary>
    public Tensor UnitL2(Tensor gradient)
    {
        var gp = InPixelUnits(gradient);
        return gp / PerExample(L2Norm(gp).AtLeast(1e-12));
    }

    /// <summary>Clips to the valid input range only.</summary>
    public Tensor ClipToRange(Tensor x) => torch.minimum(torch.maximum(x, Range.MinTensor(Clean)), Range.MaxTensor(Clean));

    /// <summary>Per-example L2 norm over all but the first dimension, as [N].</summary>
    public static Tensor L2Norm(Tensor t) => t.flatten(1).norm(1, keepdim: false, p: 2);

    /// <summary>Per-example L-inf norm over all but the first dimension, as [N].</summary>
    public static Tensor LInfNorm(Tensor t) => t.flatten(1).abs().amax(new long[] { 1 });

    private Tensor CheckLogits(Tensor logits)
    {
        if (logits.dim() != 2 || logits.shape[0] != Count)
            throw new InvalidOperationException($"The model must return logits of shape [{Count}, K]; it returned [{string.Join(", ", logits.shape)}].");
        if (_classCount < 0)
        {
            _classCount = logits.shape[1];
            if (_classCount < 2)
                throw new InvalidOperationException($"The model returns {_classCount} logit per example; a classifier needs at least 2 classes.");
            if (_labels is not null)
            {
                long min = _labels.min().item<long>(), max = _labels.max().item<long>();
                if (min < 0 || max >= _classCount)
                    throw new ArgumentOutOfRangeException("labels", $"Labels must lie in [0, {_classCount - 1}] for a model with {_classCount} classes; found {(min < 0 ? min : max)}.");
            }
        }
        return logits;
    }
}
