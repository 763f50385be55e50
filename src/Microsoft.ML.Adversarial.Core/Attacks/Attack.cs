using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Microsoft.ML.Adversarial.Models;

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

    /// <summary>Creates a method under its registry name with its settings.</summary>
    /// <param name="name">Registry name ("fgsm", "step-ll", ...).</param>
    /// <param name="options">The settings; checked by <c>ValidateOptions</c> before each run.</param>
    protected Attack(string name, AttackOptions options)
    {
        Name = name;
        Options = options ?? throw new ArgumentNullException(nameof(options));
    }

    /// <summary>Registry name ("fgsm", "step-ll", ...).</summary>
    public string Name { get; }

    /// <summary>The settings: epsilon (pixel units), input range, seed, compute options and the method's own (<see cref="AttackOptions"/> and its subclasses).</summary>
    public AttackOptions Options { get; }

    /// <summary>True when the method needs the true labels (FGSM, iter. basic, step rnd.).</summary>
    public virtual bool RequiresLabels => false;

    /// <summary>
    /// True when the method reads the true labels if given (so its result can leak them, section 4.2): every method that
    /// requires them, and untargeted PGD, which falls back to the prediction without them.
    /// </summary>
    public virtual bool UsesLabels => RequiresLabels;

    /// <summary>True for noise baselines (random sign, truncated normal) that are not attacks.</summary>
    public virtual bool IsRandomBaseline => false;

    /// <summary>
    /// True when the method differentiates the model (most attacks). False for score-based search (Square) and noise
    /// baselines, which also run on a black-box model that only returns scores (<see cref="ScoreFunctionModel"/>).
    /// </summary>
    public virtual bool NeedsGradients => true;

    /// <summary>
    /// Adversarial images for each epsilon (pixel units): element i is what <see cref="Generate"/> gives with
    /// <paramref name="epsilons"/>[i]. One-step methods override this to reuse a single gradient for all of them.
    /// </summary>
    public virtual Tensor[] GenerateForEpsilons(Module<Tensor, Tensor> model, Tensor images, Tensor? labels, IReadOnlyList<double> epsilons)
    {
        PixelEpsilon.CheckAll(epsilons, nameof(epsilons));
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
        using var mode = ModelMode.Set(model, Options.GradientsInTrainingMode);
        var batch = Prepare(model, images, labels, epsilon);
        using var hold = ComputeModel.HoldFor(batch.Model);
        return Run(batch).detach().contiguous().MoveToOuterDisposeScope();
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
        if (Options.ValidateInputs) Options.InputRange.Check(clean, "Set AttackOptions.InputRange to the range the model takes (for example InputRange.Pixels for [0, 255]), or rescale the images (and remove NaN).", nameof(images));

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
            PixelEpsilon.Check(eps, nameof(epsilon));
        }
        // The model as Options.Compute asks (channels-last, BatchNorm folded, bfloat16): the one place attacks pick it.
        var runner = Runner(model, Options.Compute, evaluationOnly: !Options.GradientsInTrainingMode);
        return new AttackBatch(this, runner, clean, y, eps, GeneratorFor(clean.device));
    }

    /// <summary>Checks option values; each attack adds its own.</summary>
    protected virtual void ValidateOptions()
    {
        PixelEpsilon.Check(Options.Epsilon, nameof(AttackOptions.Epsilon));
        if (Options.InputRange is null)
            throw new ArgumentNullException(nameof(AttackOptions.InputRange), "InputRange must be set (for example InputRange.UnitInterval).");
        if (Options.EotSamples < 1)
            throw new ArgumentOutOfRangeException(nameof(AttackOptions.EotSamples), Options.EotSamples, "EotSamples (gradient passes averaged per step) must be at least 1.");
        if (Options.BpdaLayers is null || Options.BpdaLayers.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException("BpdaLayers must be a list of layer names (none empty); use an empty list for none.", nameof(AttackOptions.BpdaLayers));
        // A method that takes no gradient would ignore both settings: say so rather than run without them.
        if (!NeedsGradients && (Options.EotSamples > 1 || Options.BpdaLayers.Count > 0))
            throw new ArgumentException($"Method '{Name}' takes no gradients, so EotSamples and BpdaLayers (which change how gradients are taken) do not apply; " +
                "leave them at 1 and empty, or use a gradient method (pgd-linf, apgd-ce, ...).", Options.EotSamples > 1 ? nameof(AttackOptions.EotSamples) : nameof(AttackOptions.BpdaLayers));
    }

    /// <summary>
    /// <paramref name="model"/> as <paramref name="compute"/> asks (<see cref="ComputeModel"/>: channels-last, BatchNorm
    /// folded, bfloat16); a black box (scores from an ML.NET model) runs as it is. What attacks and evaluators call.
    /// </summary>
    internal static Module<Tensor, Tensor> Runner(Module<Tensor, Tensor> model, ComputeOptions? compute, bool evaluationOnly) =>
        ScoreFunctionModel.Inside(model) is null ? ComputeModel.For(model, compute ?? ComputeOptions.Default, evaluationOnly) ?? model : model;

    private Generator? GeneratorFor(Device device)
    {
        if (Options.Seed is not long seed) return null;
        if (_generator is null || _generator.device.ToString() != device.ToString())
            _generator = new Generator((ulong)seed, device);
        return _generator;
    }

    /// <summary>Restarts the random stream at <see cref="AttackOptions.Seed"/>, so the next call repeats the first.</summary>
    public virtual void ResetRandom() => _generator = null;

    /// <summary>The name and epsilon, e.g. <c>fgsm (eps 16)</c>.</summary>
    public override string ToString() => $"{Name} (eps {Options.Epsilon})";
}
