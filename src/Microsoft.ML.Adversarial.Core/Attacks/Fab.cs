using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// FAB-T, the targeted fast adaptive boundary attack (Croce and Hein, "Minimally distorted adversarial examples with a
/// fast adaptive boundary attack", ICML 2020), L-inf, as AutoAttack runs it. For the target t (the clean image's 2nd,
/// 3rd, ... most likely class) the boundary <c>f = z_t - z_y = 0</c> is linearised at the iterate x_k:
/// <c>{q : g.q = g.x_k - f(x_k)}</c>, g = grad f(x_k). With d_k and d_0 the smallest L-inf steps from x_k and from the
/// clean image x onto that hyperplane within the input range, and
/// <c>alpha = min(||d_k|| / (||d_k|| + ||d_0||), alpha_max)</c>:
/// <c>x_{k+1} = clip((1 - alpha)(x_k + eta d_k) + alpha (x + eta d_0))</c>. An iterate that is misclassified is kept when
/// it is the closest found so far, and is pulled back to <c>x + beta (x_{k+1} - x)</c>. FAB looks for the smallest
/// perturbation; an example counts as broken (and gets that point) only when it lies within epsilon, as in AutoAttack;
/// the others keep the clean image. Distances are measured in pixel units whatever the input range. Untargeted FAB
/// (<see cref="FabOptions.Targeted"/> false, AutoAttack's 'plus' version) linearises every class's boundary
/// <c>z_k - z_y = 0</c> at x_k and steps towards the closest, <c>argmin_k |f_k| / ||grad f_k||_1</c>.
/// </summary>
public sealed class Fab(FabOptions? options = null) : Attack(NameFor(options), options ?? new FabOptions())
{
    private static string NameFor(FabOptions? o) => (o?.Targeted, o?.Norm) switch
    {
        (false, PgdNorm.L2) => AttackMethod.FabUntargetedL2,
        (false, _) => AttackMethod.FabUntargeted,
        (_, PgdNorm.L2) => AttackMethod.FabTL2,
        _ => AttackMethod.FabT,
    };

    private bool L2 => Options.Norm == PgdNorm.L2;

    /// <summary>The size of a change (pixel units, flattened [n, d]) in the attack's norm.</summary>
    private Tensor Size(Tensor change) => L2 ? AttackBatch.L2Norm(change) : AttackBatch.LInfNorm(change);

    /// <summary>The settings of this run (budgets, step rules).</summary>
    public new FabOptions Options => (FabOptions)base.Options;

    /// <summary>Attacks the true labels when given, the prediction otherwise.</summary>
    public override bool UsesLabels => true;

    /// <summary>
    /// For each example of the last <see cref="Attack.Generate"/> call, the L-inf size (pixel units) of the smallest
    /// misclassified point found, whether or not it lies within epsilon; +infinity when none was found or the clean
    /// image was already misclassified.
    /// </summary>
    public double[] LastDistances { get; private set; } = Array.Empty<double>();

    /// <summary>For each example of the last call, the target class of the run that broke it within epsilon; -1 when none did.</summary>
    public long[] LastTargets { get; private set; } = Array.Empty<long>();

    /// <inheritdoc/>
    protected override void ValidateOptions()
    {
        base.ValidateOptions();
        if (Options.Iterations < 1) throw new ArgumentOutOfRangeException(nameof(FabOptions.Iterations), Options.Iterations, "FAB needs at least 1 iteration.");
        if (Options.TargetClasses < 1) throw new ArgumentOutOfRangeException(nameof(FabOptions.TargetClasses), Options.TargetClasses, "FAB-T needs at least 1 target class.");
        if (Options.Restarts < 1) throw new ArgumentOutOfRangeException(nameof(FabOptions.Restarts), Options.Restarts, "FAB needs at least 1 restart.");
        if (!(Options.AlphaMax >= 0 && Options.AlphaMax <= 1)) throw new ArgumentOutOfRangeException(nameof(FabOptions.AlphaMax), Options.AlphaMax, "alpha_max must be in [0, 1]; the paper uses 0.1.");
        if (!(Options.Overshoot >= 1 && double.IsFinite(Options.Overshoot))) throw new ArgumentOutOfRangeException(nameof(FabOptions.Overshoot), Options.Overshoot, "The overshoot eta must be >= 1; the paper uses 1.05.");
        if (!(Options.Backward > 0 && Options.Backward < 1)) throw new ArgumentOutOfRangeException(nameof(FabOptions.Backward), Options.Backward, "The backward step beta must be in (0, 1); the paper uses 0.9.");
    }

    /// <inheritdoc/>
    protected override Tensor Run(AttackBatch b)
    {
        var cleanLogits = b.Logits(b.Clean);
        long k = cleanLogits.shape[1];
        var y = b.HasLabels ? b.TrueLabels : AttackBatch.Predicted(cleanLogits);
        var ranked = cleanLogits.argsort(1, descending: true);
        var adv = b.Clean.clone();
        var robust = AttackBatch.Predicted(cleanLogits).eq(y);
        var distance = HeldScalars.Full(b.Count, double.PositiveInfinity, ScalarType.Float32, b.Clean.device);
        var brokenWith = HeldScalars.Full(b.Count, -1, ScalarType.Int64, b.Clean.device);
        // Untargeted: one pass over the restarts, the closest boundary chosen at every iteration (target null).
        int targets = Options.Targeted ? (int)Math.Min(Options.TargetClasses, k - 1) : 1;
        for (int t = 1; t <= targets; t++)
            for (int r = 0; r < Options.Restarts; r++)
            {
                using var scope = NewDisposeScope();
                var index = robust.nonzero().squeeze(1);
                if (index.numel() == 0) break;
                var sub = b.Subset(index, y.index_select(0, index));
                Tensor? target = Options.Targeted ? ranked.index_select(0, index)[.., t].contiguous() : null;
                var (found, dist) = SingleRun(sub, target, randomStart: r > 0);
                distance.index_copy_(0, index, minimum(distance.index_select(0, index), dist));
                // Broken only within epsilon (AutoAttack's rule); the others stay in the running.
                var accepted = dist.le(sub.Epsilon.to(dist.dtype));
                var which = accepted.nonzero().squeeze(1);
                var broken = index.index_select(0, which);
                adv.index_copy_(0, broken, found.index_select(0, which));
                brokenWith.index_copy_(0, broken, target is null ? sub.Logits(found).argmax(1).index_select(0, which) : target.index_select(0, which));
                robust.index_fill_(0, broken, HeldScalars.False);
            }
        LastDistances = distance.to(ScalarType.Float64).cpu().data<double>().ToArray();
        LastTargets = brokenWith.cpu().data<long>().ToArray();
        return adv;
    }

    /// <summary>One FAB run towards <paramref name="target"/>: (the closest misclassified point, projected into the ball; its L-inf size in pixels [n], +inf where none).</summary>
    private (Tensor Found, Tensor Distance) SingleRun(AttackBatch b, Tensor? target, bool randomStart)
    {
        var y = b.TrueLabels;
        var shape = b.Clean.shape;
        // Pixel coordinates (model units / units per pixel): L-inf distances in pixels, the range a box per channel.
        var origin = (b.Clean / b.UnitsPerPixel).flatten(1);
        var lo = (b.Range.MinTensor(b.Clean) / b.UnitsPerPixel).expand(shape).flatten(1);
        var hi = (b.Range.MaxTensor(b.Clean) / b.UnitsPerPixel).expand(shape).flatten(1);
        var x = origin.clone();
        if (randomStart)
        {
            // Half the ball's radius in a random direction: uniform signs' scale for L-inf, a Gaussian direction for L2.
            var u = L2 ? b.Normal().flatten(1) : b.Uniform().flatten(1).Times(2).Minus(1);
            var radius = b.Epsilon.Times(0.5).unsqueeze(1);
            x = minimum(maximum(origin.Plus(radius * u / Size(u).AtLeast(1e-12).unsqueeze(1)), lo), hi);
        }
        var best = origin.clone();
        var bestDistance = HeldScalars.Full(b.Count, double.PositiveInfinity, origin.dtype, origin.device);

        for (int i = 0; i < Options.Iterations; i++)
        {
            using var scope = NewDisposeScope();
            var (f, g) = target is null ? ClosestMarginAndGradient(b, x.view(shape) * b.UnitsPerPixel, y) : MarginAndGradient(b, x.view(shape) * b.UnitsPerPixel, y, target);
            // The boundary z_t = z_y, linearised at x: {q : g.q = g.x - f}.
            var level = (g * x).sum(1).Minus(f);
            var fromX = L2 ? ProjectL2(x, g, level, lo, hi) : ProjectLInf(x, g, level, lo, hi);
            var fromOrigin = L2 ? ProjectL2(origin, g, level, lo, hi) : ProjectLInf(origin, g, level, lo, hi);
            var a1 = Size(fromX).AtLeast(1e-8);
            var a2 = Size(fromOrigin).AtLeast(1e-8);
            var alpha = (a1 / a1.Plus(a2)).AtMost(Options.AlphaMax).unsqueeze(1);
            var towardsX = x.Plus(fromX.Times(Options.Overshoot)) * alpha.neg().Plus(1.0);
            var next = towardsX.Plus(origin.Plus(fromOrigin.Times(Options.Overshoot)) * alpha);
            x.copy_(minimum(maximum(next, lo), hi));
            var fooled = b.Logits(x.view(shape) * b.UnitsPerPixel).argmax(1).ne(y);
            var size = Size(x.Minus(origin));
            var closer = fooled.logical_and(size.lt(bestDistance));
            best.copy_(where(closer.unsqueeze(1), x, best));
            bestDistance.copy_(where(closer, size, bestDistance));
            // From the adversarial side, step back towards the clean image to look for a closer crossing.
            x.copy_(where(fooled.unsqueeze(1), origin.Plus(x.Minus(origin).Times(Options.Backward)), x));
        }
        var found = best.view(shape) * b.UnitsPerPixel;
        return (L2 ? b.ProjectL2(found) : b.Project(found), bestDistance);
    }

    /// <summary>
    /// Untargeted: <c>f_k = z_k - z_y</c> and its gradient for every class k (one gradient pass each, as the reference's
    /// Jacobian takes one backward pass per class), and of those the class whose linearised boundary is closest in L-inf,
    /// <c>|f_k| / ||grad f_k||_1</c> (the true class excluded): its f [n] and gradient per pixel value [n, d].
    /// </summary>
    private (Tensor F, Tensor Gradient) ClosestMarginAndGradient(AttackBatch b, Tensor x, Tensor y)
    {
        Tensor? logits = null;
        var trueGrad = b.InPixelUnits(b.InputGradient(x, z =>
        {
            logits = z.detach();
            return z.gather(1, y.unsqueeze(1)).sum();
        })).flatten(1);
        long classes = logits!.shape[1];
        var zy = logits.gather(1, y.unsqueeze(1)).squeeze(1);
        Tensor? bestF = null, bestG = null, bestDistance = null;
        for (long k = 0; k < classes; k++)
        {
            long c = k;
            var gk = b.InPixelUnits(b.InputGradient(x, z => z[.., c].sum())).flatten(1).Minus(trueGrad);
            var fk = logits[.., c].Minus(zy);
            // The true class has no boundary with itself.
            var distance = where(y.EqualTo(c), HeldScalars.Full(y.shape[0], double.PositiveInfinity, fk.dtype, fk.device), fk.abs() / (L2 ? AttackBatch.L2Norm(gk) : gk.abs().sum(1)).Plus(1e-12));
            if (bestF is null) (bestF, bestG, bestDistance) = (fk, gk, distance);
            else
            {
                var closer = distance.lt(bestDistance!);
                bestF = where(closer, fk, bestF);
                bestG = where(closer.unsqueeze(1), gk, bestG!);
                bestDistance = where(closer, distance, bestDistance!);
            }
        }
        return (bestF!, bestG!);
    }

    /// <summary><c>f = z_t - z_y</c> at <paramref name="x"/> (model units) [n], and its gradient per pixel value, flattened [n, d].</summary>
    private static (Tensor F, Tensor Gradient) MarginAndGradient(AttackBatch b, Tensor x, Tensor y, Tensor target)
    {
        Tensor? f = null;
        var g = b.InputGradient(x, z =>
        {
            var d = z.gather(1, target.unsqueeze(1)).squeeze(1).Minus(z.gather(1, y.unsqueeze(1)).squeeze(1));
            f = d.detach();
            return d.sum();
        });
        return (f!, b.InPixelUnits(g).flatten(1));
    }

    /// <summary>
    /// The smallest-L-inf step d with <c>w.(t + d) = c</c> and <c>lo &lt;= t + d &lt;= hi</c>, per row; where the box
    /// cannot reach the hyperplane, the step that comes closest. Moving each coordinate by at most lambda towards the
    /// plane changes <c>w.t</c> by <c>h(lambda) = sum_i |w_i| min(lambda, room_i)</c>, piecewise linear and increasing:
    /// its breakpoints are the sorted rooms, so lambda solves one linear piece, and <c>d_i = sign(w_i) min(lambda, room_i)</c>.
    /// </summary>
    /// <summary>
    /// The smallest-L2 step d with <c>w.(t + d) = c</c> and <c>lo &lt;= t + d &lt;= hi</c>, per row; where the box cannot
    /// reach the hyperplane, the step that comes closest. By the KKT conditions <c>d_i = sign(w_i) min(lambda |w_i|, room_i)</c>
    /// for one lambda &gt;= 0, so <c>w.d</c> rises by <c>h(lambda) = sum_i min(lambda w_i^2, |w_i| room_i)</c>, piecewise linear
    /// and increasing with breakpoints <c>room_i / |w_i|</c>: lambda solves one linear piece, as in <see cref="ProjectLInf"/>.
    /// </summary>
    internal static Tensor ProjectL2(Tensor t, Tensor w, Tensor c, Tensor lo, Tensor hi)
    {
        using var scope = NewDisposeScope();
        var need = c.Minus((w * t).sum(1));
        var orientation = need.Less(0).to(w.dtype).Times(-2).Plus(1.0).unsqueeze(1);
        var v = w * orientation;
        var room = where(v.Greater(0), hi.Minus(t), t.Minus(lo)).AtLeast(0);
        var a = v.abs();
        // A coordinate with no weight never saturates (breakpoint far beyond any reachable lambda) and adds nothing.
        var breakpoints = (room / a.AtLeast(1e-30)).AtMost(1e12);
        var (sorted, order) = breakpoints.sort(1);
        var saturated = (a * room).gather(1, order);
        var slopes = (a * a).gather(1, order);
        var usedUpTo = saturated.cumsum(1);
        var slopeUpTo = slopes.cumsum(1);
        var total = slopeUpTo[.., ^1..];
        // h at each breakpoint: the coordinates up to it saturated, lambda times the remaining slopes for the rest.
        var reach = usedUpTo.Plus(sorted * total.Minus(slopeUpTo));
        var goal = need.abs().unsqueeze(1);
        var piece = reach.le(goal).sum(1, keepdim: true);
        var zero = zeros(t.shape[0], 1, dtype: t.dtype, device: t.device);
        var used = cat(new[] { zero, usedUpTo }, 1).gather(1, piece);
        var rest = total.Minus(cat(new[] { zero, slopeUpTo }, 1).gather(1, piece));
        var lambda = where(rest.Greater(0), goal.Minus(used) / rest, sorted[.., ^1..]).AtLeast(0);
        return (v.sign() * minimum(lambda * a, room)).MoveToOuterDisposeScope();
    }

    internal static Tensor ProjectLInf(Tensor t, Tensor w, Tensor c, Tensor lo, Tensor hi)
    {
        using var scope = NewDisposeScope();
        var need = c.Minus((w * t).sum(1));
        // Orient w so that w.d must rise by |need|.
        var orientation = need.Less(0).to(w.dtype).Times(-2).Plus(1.0).unsqueeze(1);
        var v = w * orientation;
        var room = where(v.Greater(0), hi.Minus(t), t.Minus(lo)).AtLeast(0);
        var (rooms, order) = room.sort(1);
        var weights = v.abs().gather(1, order);
        var weightedRooms = (weights * rooms).cumsum(1);
        var cumulativeWeights = weights.cumsum(1);
        var total = cumulativeWeights[.., ^1..];
        // h at each breakpoint: the rooms below it used up, lambda = that room for the rest.
        var reach = weightedRooms.Plus(rooms * total.Minus(cumulativeWeights));
        var goal = need.abs().unsqueeze(1);
        var piece = reach.le(goal).sum(1, keepdim: true);
        var zero = zeros(t.shape[0], 1, dtype: t.dtype, device: t.device);
        var used = cat(new[] { zero, weightedRooms }, 1).gather(1, piece);
        var rest = total.Minus(cat(new[] { zero, cumulativeWeights }, 1).gather(1, piece));
        var lambda = where(rest.Greater(0), goal.Minus(used) / rest, rooms[.., ^1..]).AtLeast(0);
        return (v.sign() * minimum(lambda, room)).MoveToOuterDisposeScope();
    }
}
