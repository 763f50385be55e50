using System.Reflection;

namespace Microsoft.ML.Adversarial;

/// <summary>Settings every attack shares.</summary>
public class AttackOptions
{
    /// <summary>Size of the perturbation in pixel units of [0, 255] (the paper's convention), whatever range the model takes.</summary>
    public double Epsilon { get; set; } = 16;

    /// <summary>How the model's inputs relate to pixels; results are clipped to it. Default [0, 1].</summary>
    public InputRange InputRange { get; set; } = InputRange.UnitInterval;

    /// <summary>
    /// Take gradients with BatchNorm and dropout in training mode. Off by default: attacks see the model as it is
    /// used for inference. The model's own mode is restored either way.
    /// </summary>
    public bool GradientsInTrainingMode { get; set; }

    /// <summary>Seed of the attack's random numbers (random targets, random starts, noise). Null uses TorchSharp's global generator.</summary>
    public long? Seed { get; set; }

    /// <summary>
    /// How the model runs: precision (fp32 by default; bfloat16 opt-in), channels-last layout and BatchNorm folding
    /// (<see cref="ComputeOptions"/>). The defaults equal the plain fp32 path up to float rounding.
    /// </summary>
    public ComputeOptions Compute { get; set; } = ComputeOptions.Default;

    /// <summary>Reject images outside <see cref="InputRange"/> (by more than 1e-4 of the range). On by default.</summary>
    public bool ValidateInputs { get; set; } = true;

    /// <summary>
    /// Expectation over Transformation (Athalye et al., 2018): every input gradient is the mean of this many
    /// forward and backward passes, so a model that draws random numbers (a random input transform, noisy gradients)
    /// is attacked through its expected gradient rather than one draw. 1 (the default) is one pass; AutoAttack's
    /// 'rand' version uses 20.
    /// </summary>
    public int EotSamples { get; set; } = 1;

    /// <summary>
    /// Backward Pass Differentiable Approximation (Athalye et al., 2018): layers of the model, by name (as
    /// <c>named_modules()</c> gives them, or the last part of that name), whose backward pass is taken as the identity
    /// while gradients are computed. Their forward pass is unchanged. For a non-differentiable layer that keeps its
    /// input's shape and roughly its value (rounding, quantisation, JPEG-like filters), whose true gradient is zero or
    /// useless. Empty by default.
    /// </summary>
    public IReadOnlyList<string> BpdaLayers { get; set; } = Array.Empty<string>();

    /// <summary>A copy, so a registry entry or a transformer can change settings without touching the caller's object.</summary>
    public AttackOptions Clone() => (AttackOptions)MemberwiseClone();

    // Every setting declared here, found by reflection: a setting added later is copied too, never dropped silently.
    private static readonly PropertyInfo[] SharedSettings = typeof(AttackOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanRead && p.CanWrite).ToArray();

    /// <summary>Copies the settings every attack shares (those of this class) onto <paramref name="target"/>.</summary>
    public void CopySharedTo(AttackOptions target)
    {
        ArgumentNullException.ThrowIfNull(target);
        foreach (var p in SharedSettings) p.SetValue(target, p.GetValue(this));
    }

    /// <summary>
    /// Applies the two settings the ML.NET attack transform and the CLI give every method, a step count and a step size
    /// (pixel units), as this options type understands them. A setting the method has no use for is refused, naming it
    /// and the method, never dropped: a user who set it would otherwise get the defaults without a word.
    /// </summary>
    /// <param name="method">The method's registry name, for the message.</param>
    /// <param name="iterations">Steps (or, for a search, queries); null keeps the method's default.</param>
    /// <param name="stepSize">Step size in pixel units; null keeps the method's default.</param>
    public virtual void ApplySteps(string method, int? iterations, double? stepSize)
    {
        RefuseSteps(method, iterations, "one step of size epsilon: it takes no step count");
        RefuseStepSize(method, stepSize, "one step of size epsilon: it takes no separate step size");
    }

    /// <summary>Refuses a step count a method has no use for, saying why.</summary>
    protected static void RefuseSteps(string method, int? iterations, string why)
    {
        if (iterations is not null)
            throw new ArgumentOutOfRangeException("Iterations", iterations, $"Method '{method}' is {why}; leave Iterations unset (null), or pick an iterative method (iter-basic, pgd-linf, apgd-ce).");
    }

    /// <summary>Refuses a step size a method has no use for, saying why.</summary>
    protected static void RefuseStepSize(string method, double? stepSize, string why)
    {
        if (stepSize is not null)
            throw new ArgumentOutOfRangeException("Alpha", stepSize, $"Method '{method}' is {why}; leave Alpha (the step size) unset (null).");
    }

    /// <summary>
    /// Options for running this method on a model that returns scores only, or null when it cannot (the default). An
    /// ensemble with a score-based part (AutoAttack) returns options that run only that part.
    /// </summary>
    public virtual AttackOptions? ForScoresOnly() => null;

    /// <summary>These options as the type a method takes: this object when it already is one, else a new one with the shared settings.</summary>
    public T As<T>() where T : AttackOptions, new()
    {
        if (this is T t) return t;
        var copy = new T();
        CopySharedTo(copy);
        return copy;
    }
}

/// <summary>Settings of the iterative methods ("iter. basic", "iter. l.l.").</summary>
public class IterativeAttackOptions : AttackOptions
{
    /// <summary>Step size in pixel units; the paper uses 1.</summary>
    public double Alpha { get; set; } = 1;

    /// <summary>Number of steps; null uses the paper's <c>min(eps + 4, 1.25 eps)</c>, truncated, at least 1, per example.</summary>
    public int? Iterations { get; set; }

    /// <summary>The step count is <see cref="Iterations"/>, the step size <see cref="Alpha"/>.</summary>
    public override void ApplySteps(string method, int? iterations, double? stepSize)
    {
        if (iterations is not null) Iterations = iterations;
        if (stepSize is double alpha) Alpha = alpha;
    }

    /// <summary>The paper's iteration count for an epsilon in pixel units.</summary>
    public static int DefaultIterations(double epsilon) => Math.Max(1, (int)Math.Min(epsilon + 4, 1.25 * epsilon));
}

/// <summary>The norm a PGD attack's ball is measured in.</summary>
public enum PgdNorm
{
    /// <summary>The L-infinity ball: every pixel moves by at most eps (the paper's norm).</summary>
    LInf,
    /// <summary>The L2 ball: the whole perturbation has Euclidean length at most eps (pixel units).</summary>
    L2,
}

/// <summary>Settings of projected gradient descent (Madry et al., 2018).</summary>
public class PgdOptions : AttackOptions
{
    /// <summary>The norm of the ball the steps are projected onto (default L-infinity).</summary>
    public PgdNorm Norm { get; set; } = PgdNorm.LInf;
    /// <summary>Steps per restart.</summary>
    public int Steps { get; set; } = 10;
    /// <summary>Step size in pixel units; null uses 2.5 eps / steps (Madry et al.).</summary>
    public double? StepSize { get; set; }
    /// <summary>Independent random starts; each example keeps its most damaging result.</summary>
    public int Restarts { get; set; } = 1;
    /// <summary>Start from a uniformly random point of the ball rather than the clean image.</summary>
    public bool RandomStart { get; set; } = true;
    /// <summary>Target class for a targeted attack; null attacks the true label.</summary>
    public int? TargetClass { get; set; }
    /// <summary>Target the least-likely class of the clean image (overrides <see cref="TargetClass"/>).</summary>
    public bool TargetLeastLikely { get; set; }

    /// <summary>The step count is <see cref="Steps"/> (per restart), the step size <see cref="StepSize"/>.</summary>
    public override void ApplySteps(string method, int? iterations, double? stepSize)
    {
        if (iterations is int steps) Steps = steps;
        if (stepSize is double size) StepSize = size;
    }
}
