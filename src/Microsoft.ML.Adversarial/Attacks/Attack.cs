using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Base of every adversarial example generator. It owns what all methods share: input and option checks,
/// epsilon in pixel units (one value or one per example), evaluation mode (restored afterwards), gradients taken
/// for the input only (the model's parameter gradients are never touched), clipping to the epsilon ball and the
/// valid input range, seeded randomness and a dispose scope per call.
/// </summary>
public abstract class Attack
{
    private Generator? _generator;

    protected Attack(string name, AttackOptions options)
    {
        Name = name;
        Options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>Registry name ("fgsm", "step-ll", ...).</summary>
    public string Name { get; }

    public AttackOptions Options { get; }

    /// <summary>True when the method needs the true labels (FGSM, iter. basic, step rnd.).</summary>
    public virtual bool RequiresLabels => false;

    /// <summary>
    /// Adversarial images for each epsilon (pixel units): element i is what <see cref="Generate"/> gives with
    /// <paramref name="epsilons"/>[i]. One-step methods override this to reuse a single gradient for all of them.
    /// </summary>
    public virtual Tensor[] GenerateForEpsilons(Module<Tensor, Tensor> model, Tensor images, Tensor? labels, IReadOnlyList<double> epsilons)
    {
        ArgumentNullException.ThrowIfNull(epsilons);
        return epsilons.Select(e => Generate(model, images, labels, HeldScalars.Full(images.shape[0], e, ScalarType.Float32, images.device))).ToArray();
    }

    /// <summary>
    /// Adversarial versions of <paramref name="images"/> ([N, ...], in <see cref="AttackOptions.InputRange"/>).
    /// </summary>
    /// <param name="model">A classifier returning logits [N, K].</param>
    /// <param name="images">Clean inputs; not modified.</param>
    /// <param name="labels">True classes [N] (int64 or int32); needed when <see cref="RequiresLabels"/>.</param>
    /// <param name="epsilon">Per-example epsilon [N] in pixel units; null uses <see cref="AttackOptions.Epsilon"/>.</param>
    /// <returns>A new tensor, detached, on the images' device, owned by the caller's dispose scope.</returns>
    public Tensor Generate(Module<Tensor, Tensor> model, Tensor images, Tensor? labels = null, Tensor? epsilon = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(images);
        using var scope = torch.NewDisposeScope();
        var batch = Prepare(model, images, labels, epsilon);
        using var mode = ModelMode.Set(model, Options.GradientsInTrainingMode);
        return Run(batch).detach().MoveToOuterDisposeScope();
    }

    /// <summary>Runs the method on a validated batch; the model is already in the mode the options ask for.</summary>
    protected abstract Tensor Run(AttackBatch batch);

    private protected AttackBatch Prepare(Module<Tensor, Tensor> model, Tensor images, Tensor? labels, Tensor? epsilon)
    {
        ValidateOptions();
        if (!images.is_floating_point())
            throw new ArgumentException($"Images must be a floating-point tensor; got {images.dtype}. Convert with images.to_type(ScalarType.Float32) and scale to {Options.InputRange}.", nameof(images));
        if (images.dim() < 2 || images.shape[0] == 0)
            throw new ArgumentException($"Images must have shape [N, ...] with N >= 1; got [{string.Join(", ", images.shape)}].", nameof(images));
        long n = images.shape[0];
        var clean = images.detach();
        if (Options.ValidateInputs) CheckRange(clean);

        Tensor? y = null;
        if (labels is not null)
        {
            if (labels.dim() != 1 || labels.shape[0] != n)
                throw new ArgumentException($"Labels must have shape [{n}] (one class index per image); got [{string.Join(", ", labels.shape)}].", nameof(labels));
            if (labels.is_floating_point() || labels.dtype == ScalarType.Bool)
                throw new ArgumentException($"Labels must be integer class indices; got {labels.dtype}.", nameof(labels));
            y = labels.to(ScalarType.Int64, clean.device).detach();
        }
        else if (RequiresLabels)
            throw new ArgumentException($"Attack '{Name}' needs the true labels; pass them to Generate (or use a method that does not, such as 'fgsm-pred' or 'step-ll').", nameof(labels));

        Tensor eps;
        if (epsilon is null)
            eps = HeldScalars.Full(n, Options.Epsilon, clean.dtype, clean.device);
        else
        {
            if (epsilon.dim() != 1 || epsilon.shape[0] != n)
                throw new ArgumentException($"Per-example epsilon must have shape [{n}]; got [{string.Join(", ", epsilon.shape)}].", nameof(epsilon));
            eps = epsilon.to(clean.dtype, clean.device).detach();
            if (!torch.isfinite(eps).all().item<bool>() || eps.Less(0).any().item<bool>())
            {
                double bad = eps[torch.logical_or(~torch.isfinite(eps), eps.Less(0))][0].item<float>();
                throw new ArgumentOutOfRangeException(nameof(epsilon), $"Every epsilon must be finite and >= 0 (pixel units of [0, 255]); found {bad}.");
            }
            if (eps.Greater(255).any().item<bool>())
                throw new ArgumentOutOfRangeException(nameof(epsilon), $"Epsilon is in pixel units of [0, 255]; {eps.max().item<float>()} exceeds 255 (did you pass a [0, 1] value times 255 twice?).");
        }
        return new AttackBatch(this, model, clean, y, eps, GeneratorFor(clean.device));
    }

    /// <summary>Checks option values; each attack adds its own.</summary>
    protected virtual void ValidateOptions()
    {
        double e = Options.Epsilon;
        if (!double.IsFinite(e) || e < 0)
            throw new ArgumentOutOfRangeException(nameof(AttackOptions.Epsilon), e, $"Epsilon must be finite and >= 0 (pixel units of [0, 255]); got {e}.");
        if (e > 255)
            throw new ArgumentOutOfRangeException(nameof(AttackOptions.Epsilon), e, $"Epsilon is in pixel units of [0, 255]; {e} exceeds 255. For a model on [0, 1], eps 16 means 16/255.");
        if (Options.InputRange is null)
            throw new ArgumentNullException(nameof(AttackOptions.InputRange), "InputRange must be set (for example InputRange.UnitInterval).");
    }

    private void CheckRange(Tensor images)
    {
        var range = Options.InputRange;
        if (range.Channels > 1 && (images.dim() < 2 || images.shape[1] != range.Channels))
            throw new ArgumentException($"Input range {range} has {range.Channels} channels, but the images have shape [{string.Join(", ", images.shape)}].", nameof(images));
        if (!torch.isfinite(images).all().item<bool>())
            throw new ArgumentException("Images contain NaN or infinite values; clean the data before attacking it.", nameof(images));
        using var lo = range.MinTensor(images);
        using var hi = range.MaxTensor(images);
        float tol = 1e-4f * range.Max.Zip(range.Min, (a, b) => a - b).Max();
        if (images.lt(lo.Minus(tol)).any().item<bool>() || images.gt(hi.Plus(tol)).any().item<bool>())
            throw new ArgumentException(
                $"Images lie in [{images.min().item<float>()}, {images.max().item<float>()}] but the attack's input range is {range}. " +
                "Set AttackOptions.InputRange to the range the model takes (for example InputRange.Pixels for [0, 255]), or rescale the images.", nameof(images));
    }

    private Generator? GeneratorFor(Device device)
    {
        if (Options.Seed is not long seed) return null;
        if (_generator is null || _generator.device.ToString() != device.ToString())
            _generator = new Generator((ulong)seed, device);
        return _generator;
    }

    /// <summary>Restarts the random stream at <see cref="AttackOptions.Seed"/>, so the next call repeats the first.</summary>
    public void ResetRandom() => _generator = null;

    public override string ToString() => $"{Name} (eps {Options.Epsilon})";
}

/// <summary>Puts a model (and every submodule) in the requested mode and restores each module's own mode on dispose.</summary>
internal sealed class ModelMode : IDisposable
{
    private readonly List<(Module Module, bool Training)> _saved;

    private ModelMode(List<(Module, bool)> saved) => _saved = saved;

    public static ModelMode Set(Module model, bool training)
    {
        var saved = new List<(Module, bool)> { (model, model.training) };
        saved.AddRange(model.modules().Select(m => (m, m.training)));
        model.train(training);
        return new ModelMode(saved);
    }

    public void Dispose()
    {
        // Pre-order: a parent's recursive train() first, then each child's own flag.
        foreach (var (module, training) in _saved) module.train(training);
    }
}
