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
public sealed class Square(SquareOptions? options = null) : Attack(AttackMethod.Square, options ?? new SquareOptions())
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
        long n = b.Count, c = b.Clean.shape[1], h = b.Clean.shape[2], w = b.Clean.shape[3];
        var device = b.Clean.device;
        // Without labels the prediction is attacked, and the query that reads it counts against the budget.
        var cleanPrediction = AttackBatch.Predicted(b.Logits(b.Clean));
        var y = b.HasLabels ? b.TrueLabels : cleanPrediction;
        // Examples the model already gets wrong stay as they are (the reference attacks only the correct ones): a
        // stripe start could make them right again and report more robust accuracy than clean accuracy. The clean
        // prediction counts as a query, so every image the model scores is within the budget.
        var cleanWrong = cleanPrediction.ne(y).view(n, 1, 1, 1);
        long used = 1;
        var queries = HeldScalars.Full(n, used, ScalarType.Int64, device);
        if (used + 1 > Options.Queries)
        {
            Record(queries);
            return b.Clean.clone();
        }
        var stripes = Sign(b, new[] { n, c, 1, w });
        var best = b.Project(b.Clean.Plus(Radius(b) * stripes));
        best = where(cleanWrong, b.Clean, best);
        var margin = where(cleanWrong.view(n), HeldScalars.Full(n, -1, b.Clean.dtype, device), Margin(b.Logits(best), y));
        queries.copy_(queries.Plus(1));

        for (int i = 0; i < Options.Queries - used - 1; i++)
        {
            using var scope = NewDisposeScope();
            var active = margin.Greater(0);
            var index = active.nonzero().squeeze(1);
            long m = index.numel();
            if (m == 0) break;
            double p = Fraction(i, Options.InitialFraction, Options.Queries, Options.RescaleSchedule);
            long s = Math.Clamp((long)Math.Round(Math.Sqrt(p * h * w)), 1, Math.Min(h, w));
            // One window per example, at a uniformly random position, every channel one random sign.
            var top = b.Uniform(new[] { m }).Times(h - s + 1).floor().AtMost(h - s).to(ScalarType.Int64).view(m, 1, 1, 1);
            var left = b.Uniform(new[] { m }).Times(w - s + 1).floor().AtMost(w - s).to(ScalarType.Int64).view(m, 1, 1, 1);
            // 0, 1, ..., h - 1 without torch.arange's temporary Scalars (HeldScalars).
            var rows = ones(h, dtype: ScalarType.Int64, device: device).cumsum(0).Minus(1).view(1, 1, h, 1);
            var cols = ones(w, dtype: ScalarType.Int64, device: device).cumsum(0).Minus(1).view(1, 1, 1, w);
            var window = rows.ge(top).logical_and(rows.lt(top.Plus(s))).logical_and(cols.ge(left)).logical_and(cols.lt(left.Plus(s)));
            var sub = b.Subset(index, y.index_select(0, index));
            var candidate = sub.Project(where(window, sub.Clean.Plus(Radius(sub) * Sign(b, new[] { m, c, 1, 1 })), best.index_select(0, index)));
            var candidateMargin = Margin(sub.Logits(candidate), y.index_select(0, index));
            queries.copy_(queries.Plus(active.to(ScalarType.Int64)));
            var better = candidateMargin.lt(margin.index_select(0, index));
            var kept = index.masked_select(better);
            best.index_copy_(0, kept, candidate.index_select(0, better.nonzero().squeeze(1)));
            margin.index_copy_(0, kept, candidateMargin.masked_select(better));
        }
        Record(queries);
        // A misclassified point where one was found, else the point of lowest margin.
        return best;
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
