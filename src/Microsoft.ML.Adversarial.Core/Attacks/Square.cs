using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Square attack, L-inf (Andriushchenko, Croce, Flammarion, Hein, ECCV 2020): a random search that needs only the
/// model's scores, no gradients. Start from vertical stripes of ±eps; then, while the margin
/// <c>m = z_y - max_{i != y} z_i</c> is positive, set a random s x s window (every channel one random sign) to ±eps
/// and keep it when the margin falls. The side s = round(sqrt(p h w)) shrinks as p follows the published schedule
/// (p_init halved after 10, 50, 200, 500, 1000, 2000, 4000, 6000 and 8000 queries). Each example stops once
/// misclassified, and is never queried more than <see cref="SquareOptions.Queries"/> times. Works on any module that
/// returns scores (logits, or probabilities: the margin's sign is the same), for example a
/// <see cref="ScoreFunctionModel"/> around a black-box scorer.
/// </summary>
public sealed class Square(SquareOptions? options = null) : Attack(options?.Norm == PgdNorm.L2 ? AttackMethod.SquareL2 : AttackMethod.Square, options ?? new SquareOptions())
{
    private long _totalQueries;

    /// <summary>This attack's settings.</summary>
    public new SquareOptions Options => (SquareOptions)base.Options;

    /// <summary>Attacks the true labels when given, the prediction otherwise.</summary>
    public override bool UsesLabels => true;

    /// <summary>Square reads only scores.</summary>
    public override bool NeedsGradients => false;

    /// <summary>Queries each example of the last <see cref="Attack.Generate"/> call took (at most <see cref="SquareOptions.Queries"/>).</summary>
    public long[] LastQueryCounts { get; private set; } = Array.Empty<long>();

    /// <summary>Queries (images scored) over every call of this instance.</summary>
    public long TotalQueries => Interlocked.Read(ref _totalQueries);

    /// <inheritdoc/>
    protected override void ValidateOptions()
    {
        base.ValidateOptions();
        if (Options.Queries < 1) throw new ArgumentOutOfRangeException(nameof(SquareOptions.Queries), Options.Queries, "Square needs a budget of at least 1 query.");
        if (!(Options.InitialFraction > 0 && Options.InitialFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(SquareOptions.InitialFraction), Options.InitialFraction, "The initial square fraction p_init must be in (0, 1]; the paper uses 0.8 for L-inf.");
    }

    /// <summary>The share of pixels a square covers at iteration <paramref name="i"/> (the published piecewise-constant schedule).</summary>
    public static double Fraction(int i, double initial, int queries, bool rescale)
    {
        int it = rescale ? (int)(i / (double)queries * 10000) : i;
        int[] bounds = { 10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000 };
        int halvings = bounds.Count(bound => it > bound);
        return initial / (1 << halvings);
    }

    /// <inheritdoc/>
    protected override Tensor Run(AttackBatch b)
    {
        if (b.Clean.dim() != 4)
            throw new ArgumentException($"Square needs images of shape [N, C, H, W]; got [{string.Join(", ", b.Clean.shape)}].");
        return Options.Norm == PgdNorm.L2 ? Search(b, StartL2, ProposeL2) : Search(b, StartLInf, ProposeLInf);
    }

    /// <summary>
    /// The random search both norms share: from <paramref name="start"/>, each iteration scores one proposal per example
    /// still classified correctly and keeps it when its margin is lower. Without labels the prediction is attacked, and
    /// the query that reads it counts against the budget. Examples the model already gets wrong stay as they are (the
    /// reference attacks only the correct ones): a start could make them right again and report more robust accuracy than
    /// clean accuracy. Returns a misclassified point where one was found, else the point of lowest margin.
    /// </summary>
    /// <param name="b">The batch.</param>
    /// <param name="start">The first point of every example (in the ball and the range).</param>
    /// <param name="propose">For iteration i, the examples still searched (a sub-batch) and their best points: the candidates.</param>
    private Tensor Search(AttackBatch b, Func<AttackBatch, Tensor> start, Func<int, AttackBatch, Tensor, Tensor> propose)
    {
        long n = b.Count;
        var device = b.Clean.device;
        var cleanPrediction = AttackBatch.Predicted(b.Logits(b.Clean));
        var y = b.HasLabels ? b.TrueLabels : cleanPrediction;
        var cleanWrong = cleanPrediction.ne(y).view(n, 1, 1, 1);
        long used = 1;
        var queries = HeldScalars.Full(n, used, ScalarType.Int64, device);
        if (used + 1 > Options.Queries)
        {
            Record(queries);
            return b.Clean.clone();
        }
        var best = where(cleanWrong, b.Clean, start(b));
        var margin = where(cleanWrong.view(n), HeldScalars.Full(n, -1, b.Clean.dtype, device), Margin(b.Logits(best), y));
        queries.copy_(queries.Plus(1));

        for (int i = 0; i < Options.Queries - used - 1; i++)
        {
            using var scope = NewDisposeScope();
            var active = margin.Greater(0);
            var index = active.nonzero().squeeze(1);
            if (index.numel() == 0) break;
            var sub = b.Subset(index, y.index_select(0, index));
            var candidate = propose(i, sub, best.index_select(0, index));
            var candidateMargin = Margin(sub.Logits(candidate), y.index_select(0, index));
            queries.copy_(queries.Plus(active.to(ScalarType.Int64)));
            var better = candidateMargin.lt(margin.index_select(0, index));
            var kept = index.masked_select(better);
            best.index_copy_(0, kept, candidate.index_select(0, better.nonzero().squeeze(1)));
            margin.index_copy_(0, kept, candidateMargin.masked_select(better));
        }
        Record(queries);
        return best;
    }

    /// <summary>L-inf start: vertical stripes of +-eps, one random sign per column and channel.</summary>
    private static Tensor StartLInf(AttackBatch b)
        => b.Project(b.Clean.Plus(Radius(b) * Sign(b, new[] { b.Count, b.Clean.shape[1], 1, b.Clean.shape[3] })));

    /// <summary>L-inf proposal: one s x s window per example, at a uniformly random position, every channel one random sign of eps.</summary>
    private Tensor ProposeLInf(int i, AttackBatch sub, Tensor best)
    {
        long m = sub.Count, c = sub.Clean.shape[1], h = sub.Clean.shape[2], w = sub.Clean.shape[3];
        var device = sub.Clean.device;
        double p = Fraction(i, Options.InitialFraction, Options.Queries, Options.RescaleSchedule);
        long s = Math.Clamp((long)Math.Round(Math.Sqrt(p * h * w)), 1, Math.Min(h, w));
        var top = sub.Uniform(new[] { m }).Times(h - s + 1).floor().AtMost(h - s).to(ScalarType.Int64).view(m, 1, 1, 1);
        var left = sub.Uniform(new[] { m }).Times(w - s + 1).floor().AtMost(w - s).to(ScalarType.Int64).view(m, 1, 1, 1);
        // 0, 1, ..., h - 1 without torch.arange's temporary Scalars (HeldScalars).
        var rows = ones(h, dtype: ScalarType.Int64, device: device).cumsum(0).Minus(1).view(1, 1, h, 1);
        var cols = ones(w, dtype: ScalarType.Int64, device: device).cumsum(0).Minus(1).view(1, 1, 1, w);
        var window = rows.ge(top).logical_and(rows.lt(top.Plus(s))).logical_and(cols.ge(left)).logical_and(cols.lt(left.Plus(s)));
        return sub.Project(where(window, sub.Clean.Plus(Radius(sub) * Sign(sub, new[] { m, c, 1, 1 })), best));
    }

    /// <summary>
    /// Square in L2 (Andriushchenko et al., section 3.2, as AutoAttack runs it), the start: the change lives on the L2
    /// sphere of radius eps (pixel units) and is built from "mounds", s x s blocks holding two opposite stacks of
    /// concentric rectangles (<see cref="Mound"/>); the first is a grid of h/5-sized mounds with random signs per channel.
    /// </summary>
    private static Tensor StartL2(AttackBatch b)
    {
        long n = b.Count, c = b.Clean.shape[1], h = b.Clean.shape[2], w = b.Clean.shape[3];
        // The change in pixel units; the model sees clean + change * units per pixel.
        var delta = zeros(n, c, h, w, dtype: b.Clean.dtype, device: b.Clean.device);
        long s0 = Math.Max(1, h / 5), start = (h - s0 * 5) / 2;
        for (long top = start; top + s0 <= h && (top - start) / s0 < h / s0; top += s0)
            for (long left = start; left + s0 <= w && (left - start) / s0 < w / s0; left += s0)
            {
                var block = Window(delta, top, left, s0);
                block.copy_(block.Plus(Mound(b, s0) * Sign(b, new[] { n, c, 1, 1 })));
            }
        return b.ClipToRange(b.Clean.Plus(ToSphere(b, delta) * b.UnitsPerPixel));
    }

    /// <summary>
    /// L2 proposal: the mass of a second random window moves into a first one. The first window's change (per channel)
    /// becomes its old direction plus a new random-signed mound, rescaled so the image keeps its norm, the second window's
    /// is zeroed, and the whole change goes back to norm eps before clipping to the range. As in the reference, both
    /// windows lie at one position for the whole batch per iteration, drawn in [0, h - s), and the side is odd and at least 3.
    /// </summary>
    private Tensor ProposeL2(int i, AttackBatch sub, Tensor best)
    {
        long m = sub.Count, c = sub.Clean.shape[1], h = sub.Clean.shape[2], w = sub.Clean.shape[3];
        double p = Fraction(i, Options.InitialFraction, Options.Queries, Options.RescaleSchedule);
        long s = Math.Max((long)Math.Round(Math.Sqrt(p * h * w)), 3);
        if (s % 2 == 0) s++;
        s = Math.Min(s, Math.Min(h, w));
        long Draw(long size) => size - s <= 0 ? 0 : (long)Math.Min(size - s - 1, Math.Floor(sub.Uniform(new long[] { 1 }).item<float>() * (size - s)));
        long vh = Draw(h), vw = Draw(w), vh2 = Draw(h), vw2 = Draw(w);
        var current = (best.Minus(sub.Clean) / sub.UnitsPerPixel).clone();
        var first = Window(current, vh, vw, s);
        var firstNorm = first.Pow(2).sum(new long[] { 2, 3 }, keepdim: true).sqrt();
        var imageNorm = AttackBatch.L2Norm(current).view(m, 1, 1, 1);
        var union = zeros(1, 1, h, w, dtype: current.dtype, device: current.device);
        Window(union, vh, vw, s).fill_(HeldScalars.One);
        Window(union, vh2, vw2, s).fill_(HeldScalars.One);
        var unionNorm = (current * union).Pow(2).sum(new long[] { 2, 3 }, keepdim: true).sqrt();
        var fresh = Mound(sub, s) * Sign(sub, new[] { m, c, 1, 1 });
        var moved = fresh.Plus(first / firstNorm.Plus(1e-12));
        // Each channel's window gets the mass the two windows held plus an equal share of what the image lacks to eps.
        var room = (PerExampleSquare(sub.Epsilon).Minus(imageNorm.Pow(2))).AtLeast(0).DividedBy(c).Plus(unionNorm.Pow(2)).sqrt();
        moved = moved / moved.Pow(2).sum(new long[] { 2, 3 }, keepdim: true).sqrt().Plus(1e-12) * room;
        Window(current, vh2, vw2, s).zero_();
        Window(current, vh, vw, s).copy_(moved);
        return sub.ClipToRange(sub.Clean.Plus(ToSphere(sub, current) * sub.UnitsPerPixel));
    }

    /// <summary>The s x s window at (top, left) of [N, C, H, W] images, a view.</summary>
    private static Tensor Window(Tensor images, long top, long left, long s) => images.narrow(2, top, s).narrow(3, left, s);

    /// <summary>eps^2 per example, [m, 1, 1, 1].</summary>
    private static Tensor PerExampleSquare(Tensor epsilon) => epsilon.Pow(2).view(-1, 1, 1, 1);

    /// <summary>The change scaled to L2 norm eps (pixel units) per example.</summary>
    private static Tensor ToSphere(AttackBatch b, Tensor change)
        => change / b.PerExample(AttackBatch.L2Norm(change).AtLeast(1e-12)) * b.PerExample(b.Epsilon);

    /// <summary>
    /// An s x s block of unit L2 norm: the top s/2 rows a stack of concentric rectangles (weight 1/(k+1)^2 for the k-th
    /// ring from the centre, summed where they overlap), the bottom rows the negative of another; transposed with
    /// probability 1/2.
    /// </summary>
    private static Tensor Mound(AttackBatch b, long s)
    {
        var block = new double[s, s];
        void Rectangles(long rowOffset, long rows, double sign)
        {
            long rc = rows / 2, cc = s / 2;
            for (long k = 0; k <= Math.Max(rc, cc); k++)
                for (long r = Math.Max(rc - k, 0); r < Math.Min(rc - k + 2 * k + 1, rows); r++)
                    for (long col = Math.Max(cc - k, 0); col < Math.Min(cc - k + 2 * k + 1, s); col++)
                        block[rowOffset + r, col] += sign / ((k + 1.0) * (k + 1.0));
        }
        Rectangles(0, s / 2, +1);
        Rectangles(s / 2, s - s / 2, -1);
        bool transpose = b.Uniform(new long[] { 1 }).item<float>() > 0.5f;
        var values = new float[s * s];
        double norm = Math.Sqrt(block.Cast<double>().Sum(v => v * v));
        for (long r = 0; r < s; r++)
            for (long col = 0; col < s; col++)
                values[r * s + col] = (float)((transpose ? block[col, r] : block[r, col]) / (norm > 0 ? norm : 1));
        return tensor(values, new[] { 1L, 1, s, s }, dtype: b.Clean.dtype, device: b.Clean.device);
    }

    private static Tensor Radius(AttackBatch b) => b.PerExample(b.Epsilon) * b.UnitsPerPixel;

    private void Record(Tensor queries)
    {
        LastQueryCounts = queries.cpu().data<long>().ToArray();
        Interlocked.Add(ref _totalQueries, LastQueryCounts.Sum());
    }

    private static Tensor Sign(AttackBatch b, long[] shape) => b.Uniform(shape).Less(0.5).to(b.Clean.dtype).Times(2).Minus(1);

    /// <summary><c>z_y - max_{i != y} z_i</c> per example: positive while the example is classified correctly.</summary>
    public static Tensor Margin(Tensor scores, Tensor y)
    {
        var zy = scores.gather(1, y.unsqueeze(1)).squeeze(1);
        var others = scores.scatter(1, y.unsqueeze(1), HeldScalars.Full(y.shape[0], double.NegativeInfinity, scores.dtype, scores.device).unsqueeze(1));
        return zy - others.amax(1);
    }
}
