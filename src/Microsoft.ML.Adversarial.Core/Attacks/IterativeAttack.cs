using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// The iterative methods (Kurakin et al., 2016): <c>X_0 = X; X_{n+1} = Clip_{X,eps}(X_n ± alpha * sign(grad J(X_n, y)))</c>,
/// with alpha = 1 pixel value and <c>min(eps + 4, 1.25 eps)</c> steps unless the options say otherwise. With
/// per-example epsilon each example takes its own number of steps.
/// </summary>
public abstract class IterativeAttack : Attack
{
    /// <summary>Creates an iterative method.</summary>
    /// <param name="name">Registry name.</param>
    /// <param name="options">Epsilon, step size alpha and iteration count.</param>
    protected IterativeAttack(string name, IterativeAttackOptions options) : base(name, options) { }

    /// <summary>This attack's settings, with step size and iteration count.</summary>
    public new IterativeAttackOptions Options => (IterativeAttackOptions)base.Options;

    /// <summary>+1 raises the loss of <see cref="Target"/> (untargeted), -1 lowers it (towards a target class).</summary>
    protected abstract int StepSign { get; }

    /// <summary>The class whose loss the steps follow, fixed from the clean images.</summary>
    protected abstract Tensor Target(AttackBatch batch);

    /// <inheritdoc/>
    protected override void ValidateOptions()
    {
        base.ValidateOptions();
        if (!double.IsFinite(Options.Alpha) || Options.Alpha <= 0)
            throw new ArgumentOutOfRangeException(nameof(IterativeAttackOptions.Alpha), Options.Alpha, "Alpha (step size, pixel units) must be positive and finite.");
        if (Options.Iterations is < 1)
            throw new ArgumentOutOfRangeException(nameof(IterativeAttackOptions.Iterations), Options.Iterations, "Iterations must be at least 1 (or null for the paper's min(eps + 4, 1.25 eps)).");
    }

    /// <summary>Steps per example [N]: the fixed count, or the paper's rule applied to each epsilon.</summary>
    private Tensor StepsPerExample(AttackBatch b)
    {
        if (Options.Iterations is int fixedCount)
            return HeldScalars.Full(b.Count, fixedCount, ScalarType.Int64, b.Clean.device);
        var eps = b.Epsilon.to(ScalarType.Float64);
        return minimum(eps.Plus(4), eps.Times(1.25)).floor().AtLeast(1).to(ScalarType.Int64);
    }

    /// <inheritdoc/>
    protected sealed override Tensor Run(AttackBatch b)
    {
        var target = Target(b);
        var steps = StepsPerExample(b);
        long maxSteps = steps.max().item<long>();
        var alpha = tensor(Options.Alpha, dtype: b.Clean.dtype, device: b.Clean.device);
        var x = b.Clean;
        for (long t = 0; t < maxSteps; t++)
        {
            using var scope = NewDisposeScope();
            var g = b.InputGradient(x, logits => AttackBatch.CrossEntropy(logits, target));
            var active = b.PerExample(steps.Greater(t).to(b.Clean.dtype));
            var next = b.Project(x.Plus(active.Times(StepSign) * b.Step(alpha, g.sign()))).MoveToOuterDisposeScope();
            if (!ReferenceEquals(x, b.Clean)) x.Dispose();
            x = next;
        }
        return x;
    }
}

/// <summary>"Iter. basic": FGSM repeated with small steps, each clipped to the epsilon ball; uses the true label.</summary>
public sealed class BasicIterative(IterativeAttackOptions? options = null) : IterativeAttack(AttackMethod.IterBasic, options ?? new IterativeAttackOptions())
{
    /// <inheritdoc/>
    public override bool RequiresLabels => true;
    /// <inheritdoc/>
    protected override int StepSign => +1;
    /// <inheritdoc/>
    protected override Tensor Target(AttackBatch b) => b.TrueLabels;
}

/// <summary>"Iter. l.l.": step l.l. repeated with small steps towards the clean image's least-likely class.</summary>
public sealed class IterativeLeastLikely(IterativeAttackOptions? options = null) : IterativeAttack(AttackMethod.IterLL, options ?? new IterativeAttackOptions())
{
    /// <inheritdoc/>
    protected override int StepSign => -1;
    /// <inheritdoc/>
    protected override Tensor Target(AttackBatch b) => AttackBatch.LeastLikely(b.Logits(b.Clean));
}
