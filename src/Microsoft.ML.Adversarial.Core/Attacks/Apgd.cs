using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Auto-PGD (Croce and Hein, "Reliable evaluation of adversarial robustness with an ensemble of diverse
/// parameter-free attacks", ICML 2020), L-inf or L2. From a random point of the ball (uniform in the L-inf ball; on the
/// L2 sphere), with step size eta = 2 eps: <c>z = P(x_k + eta d(grad L(x_k)))</c> with d = sign (L-inf) or g / ||g||_2
/// (L2), <c>x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1}))</c>, P the projection onto the ball and the range
/// (no momentum on the first step). At checkpoints w_j (after 0.22 N iterations, then intervals shrinking by 0.03 N
/// down to 0.06 N) an example's step size halves, and it restarts from its best point, when at most rho of the steps
/// since the last checkpoint raised the loss, or when its step size was not halved there and its best loss has not
/// improved since. An example counts as broken as soon as any iterate is misclassified (and that iterate is its
/// result); restarts and targets run only on the examples still unbroken, whose result is the last run's
/// highest-loss point. Losses: cross-entropy, DLR, and targeted DLR over the top classes.
/// </summary>
public sealed class Apgd(ApgdOptions? options = null) : Attack(NameFor(options), options ?? new ApgdOptions())
{
    /// <summary>This attack's settings.</summary>
    public new ApgdOptions Options => (ApgdOptions)base.Options;

    /// <summary>Attacks the true labels when given, the prediction otherwise.</summary>
    public override bool UsesLabels => true;

    /// <summary>Called after every iteration with (iteration, best loss so far [n]) of the current run; for tests and tracing.</summary>
    internal Action<int, Tensor>? IterationObserver { get; set; }

    internal static string NameFor(ApgdOptions? o) => ((o?.Loss ?? ApgdLoss.CrossEntropy), o?.Norm == PgdNorm.L2) switch
    {
        (ApgdLoss.Dlr, false) => AttackMethod.ApgdDlr,
        (ApgdLoss.Dlr, true) => AttackMethod.ApgdDlr + "-l2", // not registered: only built directly
        (ApgdLoss.TargetedDlr, false) => AttackMethod.ApgdT,
        (ApgdLoss.TargetedDlr, true) => AttackMethod.ApgdTL2,
        (_, false) => AttackMethod.ApgdCe,
        (_, true) => AttackMethod.ApgdCeL2,
    };

    private Tensor Project(AttackBatch b, Tensor x) => Options.Norm == PgdNorm.L2 ? b.ProjectL2(x) : b.Project(x);

    private Tensor Direction(AttackBatch b, Tensor gradient) => Options.Norm == PgdNorm.L2 ? b.UnitL2(gradient) : gradient.sign();

    /// <summary>A random start: uniform in the L-inf ball, or on the L2 sphere of radius eps (as AutoAttack starts).</summary>
    private Tensor RandomStart(AttackBatch b)
    {
        if (Options.Norm == PgdNorm.L2)
        {
            var n = b.Normal();
            return b.ProjectL2(b.Clean.Plus(b.Step(b.Epsilon, n / b.PerExample(AttackBatch.L2Norm(n).AtLeast(1e-12)))));
        }
        var start = b.Uniform(b.Clean.shape).Times(2).Minus(1);
        return b.Project(b.Clean.Plus(b.Step(b.Epsilon, start / b.PerExample(AttackBatch.LInfNorm(start).AtLeast(1e-12)))));
    }

    /// <inheritdoc/>
    protected override void ValidateOptions()
    {
        base.ValidateOptions();
        if (Options.Iterations < 1) throw new ArgumentOutOfRangeException(nameof(ApgdOptions.Iterations), Options.Iterations, "APGD needs at least 1 iteration.");
        if (Options.Restarts < 1) throw new ArgumentOutOfRangeException(nameof(ApgdOptions.Restarts), Options.Restarts, "APGD needs at least 1 restart.");
        if (!(Options.Rho > 0 && Options.Rho <= 1)) throw new ArgumentOutOfRangeException(nameof(ApgdOptions.Rho), Options.Rho, "Rho must be in (0, 1]; the paper uses 0.75.");
        if (Options.TargetClasses < 1) throw new ArgumentOutOfRangeException(nameof(ApgdOptions.TargetClasses), Options.TargetClasses, "Targeted APGD needs at least 1 target class.");
    }

    /// <inheritdoc/>
    protected override Tensor Run(AttackBatch b)
    {
        var cleanLogits = b.Logits(b.Clean);
        long k = cleanLogits.shape[1];
        long needed = Options.Loss switch { ApgdLoss.Dlr => 3, ApgdLoss.TargetedDlr => 4, _ => 2 };
        if (k < needed)
            throw new ArgumentException($"Attack '{Name}' needs a model with at least {needed} classes (the DLR loss reads the 3rd{(needed == 4 ? " and 4th" : "")} largest logit); this one has {k}. Use 'apgd-ce'.");
        var y = b.HasLabels ? b.TrueLabels : AttackBatch.Predicted(cleanLogits);
        var ranked = cleanLogits.argsort(1, descending: true);
        var adv = b.Clean.clone();
        var robust = AttackBatch.Predicted(cleanLogits).eq(y);
        int targets = Options.Loss == ApgdLoss.TargetedDlr ? (int)Math.Min(Options.TargetClasses, k - 1) : 1;
        for (int t = 1; t <= targets; t++)
            for (int r = 0; r < Options.Restarts; r++)
            {
                using var scope = NewDisposeScope();
                var index = robust.nonzero().squeeze(1);
                if (index.numel() == 0) return adv.MoveToOuterDisposeScope();
                var target = Options.Loss == ApgdLoss.TargetedDlr ? ranked.index_select(0, index)[.., t] : null;
                var (found, fooled) = SingleRun(b.Subset(index, y.index_select(0, index)), target);
                // Broken examples keep their adversarial image; the others this run's highest-loss point.
                adv = adv.index_copy(0, index, found).MoveToOuterDisposeScope();
                robust = robust.index_fill(0, index.masked_select(fooled), HeldScalars.False).MoveToOuterDisposeScope();
            }
        return adv;
    }

    /// <summary>One APGD run on a batch: (a misclassified iterate where one was found, else the highest-loss point; fooled [n]).</summary>
    private (Tensor Adversarial, Tensor Fooled) SingleRun(AttackBatch b, Tensor? target)
    {
        var y = b.TrueLabels;
        int n = Options.Iterations;
        int checkpoint = Math.Max((int)(0.22 * n), 1), shrink = Math.Max((int)(0.03 * n), 1), minimum = Math.Max((int)(0.06 * n), 1);

        // The state lives in these tensors, overwritten in place, so an iteration leaves nothing behind.
        var x = RandomStart(b);
        var (loss, grad, fooled) = LossAndGradient(b, x, y, target);
        var adversarial = where(b.PerExample(fooled), x, b.Clean);
        var previous = x.clone();
        var best = x.clone();
        var bestGrad = grad.clone();
        var bestLoss = loss.clone();
        var eta = b.Epsilon.Times(2).contiguous(); // pixel units [n]
        // history[i + 1] is the loss after step i. Row 0 stays zero: the first checkpoint's window compares the first
        // step's loss with zero, as the reference implementation does (its window reads an unwritten zero row there),
        // not with the start's loss. For cross-entropy (always > 0) the first step so counts as a rise: fewer step
        // sizes are halved at the first checkpoint. Comparing with the start's loss left more images robust than the
        // reference on every seed (issue 28).
        var history = zeros(n + 1, b.Count, dtype: loss.dtype, device: loss.device);
        var bestAtCheck = bestLoss.clone();
        var halvedAtCheck = ones(b.Count, dtype: ScalarType.Bool, device: x.device);
        int lastCheck = 0;

        for (int i = 0; i < n; i++)
        {
            using var scope = NewDisposeScope();
            double a = i == 0 ? 1.0 : 0.75;
            var z = Project(b, x.Plus(b.Step(eta, Direction(b, grad))));
            var next = Project(b, x.Plus(z.Minus(x).Times(a)).Plus(x.Minus(previous).Times(1 - a)));
            previous.copy_(x);
            x.copy_(next);
            var (l, g, now) = LossAndGradient(b, x, y, target);
            grad.copy_(g);
            adversarial.copy_(where(b.PerExample(now), x, adversarial));
            fooled.logical_or_(now);
            var improved = l.gt(bestLoss);
            best.copy_(where(b.PerExample(improved), x, best));
            bestGrad.copy_(where(b.PerExample(improved), g, bestGrad));
            bestLoss.copy_(where(improved, l, bestLoss));
            history[i + 1].copy_(l);
            IterationObserver?.Invoke(i, bestLoss);

            if (i + 1 - lastCheck == checkpoint)
            {
                var halve = HalveAtCheckpoint(history[lastCheck..(i + 2)], checkpoint, Options.Rho, halvedAtCheck, bestAtCheck, bestLoss);
                eta.copy_(where(halve, eta.Times(0.5), eta));
                x.copy_(where(b.PerExample(halve), best, x));
                grad.copy_(where(b.PerExample(halve), bestGrad, grad));
                halvedAtCheck.copy_(halve);
                bestAtCheck.copy_(bestLoss);
                lastCheck = i + 1;
                checkpoint = Math.Max(checkpoint - shrink, minimum);
            }
        }
        return (where(b.PerExample(fooled), adversarial, best), fooled);
    }

    /// <summary>
    /// Which examples halve their step size at a checkpoint [n]: those whose loss rose on at most rho of the k steps
    /// since the last checkpoint (<paramref name="window"/>: the k + 1 losses from the last checkpoint's on, [k + 1, n]),
    /// and those that kept their step size at the last checkpoint without raising their best loss since.
    /// </summary>
    internal static Tensor HalveAtCheckpoint(Tensor window, int k, double rho, Tensor halvedAtLastCheck, Tensor bestAtLastCheck, Tensor bestLoss)
    {
        // Per example, over the window's rows (dim: 0). A bare sum(0) binds to sum(ScalarType): the whole window summed
        // into one byte, which made every example look steadily rising, so no step size was ever halved for
        // oscillating (issue 28: ours left more images robust than the reference; analyzer ADVML002 now refuses it).
        var raised = window[1..].gt(window[..^1]).sum(dim: 0);
        var oscillating = raised.Greater(k * rho).logical_not();
        var stalled = halvedAtLastCheck.logical_not().logical_and(bestAtLastCheck.ge(bestLoss));
        return oscillating.logical_or(stalled);
    }

    /// <summary>Per-example loss [n] (detached), its gradient at <paramref name="x"/>, and whether x is misclassified [n].</summary>
    private (Tensor Loss, Tensor Gradient, Tensor Fooled) LossAndGradient(AttackBatch b, Tensor x, Tensor y, Tensor? target)
    {
        Tensor? perExample = null, logits = null;
        var grad = b.InputGradient(x, z =>
        {
            var l = Loss(z, y, target);
            perExample = l.detach();
            logits = z.detach();
            return l.sum();
        });
        return (perExample!, grad, logits!.argmax(1).ne(y));
    }

    private Tensor Loss(Tensor z, Tensor y, Tensor? target)
    {
        switch (Options.Loss)
        {
            case ApgdLoss.CrossEntropy:
                return F.cross_entropy(z, y, reduction: TorchSharp.torch.nn.Reduction.None);
            case ApgdLoss.Dlr:
                return Dlr(z, y);
            default:
                return TargetedDlr(z, y, target!);
        }
    }

    /// <summary><c>-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3 + 1e-12)</c>, with z sorted decreasingly as z_pi1 >= z_pi2 >= ...</summary>
    public static Tensor Dlr(Tensor logits, Tensor y)
    {
        var sorted = logits.sort(1, descending: true).Values;
        var zy = logits.gather(1, y.unsqueeze(1)).squeeze(1);
        var yIsTop = logits.argmax(1).eq(y);
        var bestOther = where(yIsTop, sorted[.., 1], sorted[.., 0]);
        return bestOther.Minus(zy) / sorted[.., 0].Minus(sorted[.., 2]).Plus(1e-12);
    }

    /// <summary><c>-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2 + 1e-12)</c>: rises as the target's logit overtakes the true class's.</summary>
    public static Tensor TargetedDlr(Tensor logits, Tensor y, Tensor target)
    {
        var sorted = logits.sort(1, descending: true).Values;
        var zy = logits.gather(1, y.unsqueeze(1)).squeeze(1);
        var zt = logits.gather(1, target.unsqueeze(1)).squeeze(1);
        return zt.Minus(zy) / sorted[.., 0].Minus(sorted[.., 2].Plus(sorted[.., 3]).Times(0.5)).Plus(1e-12);
    }
}

