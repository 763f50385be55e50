using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Projected gradient descent (Madry et al., 2018), beyond the paper: from a random point of the epsilon ball,
/// repeat <c>X_{n+1} = Proj(X_n ± step * d(grad))</c> with d = sign (L-inf) or g / ||g||_2 (L2); over several
/// restarts each example keeps the result that fools the model, or else the one with the highest loss.
/// Untargeted on the true label (or the prediction when no labels are given), or targeted.
/// </summary>
public sealed class Pgd(PgdOptions? options = null) : Attack(NameFor(options), options ?? new PgdOptions())
{
    /// <summary>This attack's settings: norm, steps, restarts.</summary>
    public new PgdOptions Options => (PgdOptions)base.Options;

    private bool Targeted => Options.TargetLeastLikely || Options.TargetClass is not null;

    /// <summary>Untargeted PGD attacks the true labels when given, the prediction otherwise; targeted PGD reads no label.</summary>
    public override bool UsesLabels => !Targeted;

    private static string NameFor(PgdOptions? o) => o?.Norm == PgdNorm.L2 ? AttackMethod.PgdL2 : AttackMethod.PgdLInf;

    /// <inheritdoc/>
    protected override void ValidateOptions()
    {
        base.ValidateOptions();
        if (Options.Steps < 1) throw new ArgumentOutOfRangeException(nameof(PgdOptions.Steps), Options.Steps, "PGD needs at least 1 step.");
        if (Options.Restarts < 1) throw new ArgumentOutOfRangeException(nameof(PgdOptions.Restarts), Options.Restarts, "PGD needs at least 1 restart.");
        if (Options.StepSize is double s && (!double.IsFinite(s) || s <= 0))
            throw new ArgumentOutOfRangeException(nameof(PgdOptions.StepSize), s, "The PGD step size (pixel units) must be positive and finite.");
        if (Options.TargetClass is < 0) throw new ArgumentOutOfRangeException(nameof(PgdOptions.TargetClass), Options.TargetClass, "The target class must be >= 0.");
    }

    /// <inheritdoc/>
    protected override Tensor Run(AttackBatch b)
    {
        var cleanLogits = b.Logits(b.Clean);
        long k = cleanLogits.shape[1];
        Tensor y;
        if (Options.TargetLeastLikely) y = AttackBatch.LeastLikely(cleanLogits);
        else if (Options.TargetClass is int tc)
        {
            if (tc >= k) throw new ArgumentOutOfRangeException(nameof(PgdOptions.TargetClass), tc, $"Target class {tc} is not below the model's {k} classes.");
            y = HeldScalars.Full(b.Count, tc, ScalarType.Int64, b.Clean.device);
        }
        else y = b.HasLabels ? b.TrueLabels : AttackBatch.Predicted(cleanLogits);
        int sign = Targeted ? -1 : +1;
        double stepPixels = Options.StepSize ?? 2.5 * Options.Epsilon / Options.Steps;
        var step = tensor(stepPixels, dtype: b.Clean.dtype, device: b.Clean.device);

        Tensor best = b.Clean, bestLoss = HeldScalars.Full(b.Count, double.NegativeInfinity, ScalarType.Float32, b.Clean.device);
        var bestSuccess = zeros(b.Count, dtype: ScalarType.Bool, device: b.Clean.device);
        for (int r = 0; r < Options.Restarts; r++)
        {
            var x = Options.RandomStart ? RandomStart(b) : b.Clean;
            for (int s = 0; s < Options.Steps; s++)
            {
                using var scope = NewDisposeScope();
                var g = b.InputGradient(x, logits => AttackBatch.CrossEntropy(logits, y));
                var direction = Options.Norm == PgdNorm.LInf ? g.sign() : b.UnitL2(g);
                x = Project(b, x.Plus(b.Step(step, direction).Times(sign))).MoveToOuterDisposeScope();
            }
            using (var scope = NewDisposeScope())
            {
                var logits = b.Logits(x);
                var loss = torch.nn.functional.cross_entropy(logits, y, reduction: torch.nn.Reduction.None).to(ScalarType.Float32).Times(sign);
                var pred = logits.argmax(1);
                var success = Targeted ? pred == y : pred != y;
                var better = (success & ~bestSuccess) | ((success == bestSuccess) & (loss > bestLoss));
                best = where(b.PerExample(better), x, best).MoveToOuterDisposeScope();
                bestLoss = where(better, loss, bestLoss).MoveToOuterDisposeScope();
                bestSuccess = (bestSuccess | success).MoveToOuterDisposeScope();
            }
        }
        return best;
    }


    private Tensor RandomStart(AttackBatch b)
    {
        if (Options.Norm == PgdNorm.LInf)
            return b.Project(b.Clean.Plus(b.Step(b.Epsilon, b.Uniform().Times(2).Minus(1))));
        // Uniform in the L2 ball: a random direction times radius eps * u^(1/d).
        var n = b.Normal();
        var unit = n / b.PerExample(AttackBatch.L2Norm(n).AtLeast(1e-12));
        long d = b.Clean[0].numel();
        var radius = b.Epsilon * b.Uniform(new[] { b.Count }).Pow(1.0 / d);
        return Project(b, b.Clean.Plus(b.Step(radius, unit)));
    }

    private Tensor Project(AttackBatch b, Tensor x)
    {
        return Options.Norm == PgdNorm.LInf ? b.Project(x) : b.ProjectL2(x);
    }
}
