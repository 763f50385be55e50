using System.Globalization;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>What to evaluate: methods, epsilons (pixel units), batching, top-k and the input range.</summary>
public sealed class RobustnessOptions : EvaluationOptions
{
    /// <summary>The paper's comparison: step l.l., FGSM, iter. basic and iter. l.l. at eps 2, 4, 8 and 16.</summary>
    public RobustnessOptions() : base(new[] { AttackMethod.StepLL.Name, AttackMethod.Fgsm.Name, AttackMethod.IterBasic.Name, AttackMethod.IterLL.Name }, new[] { 2.0, 4.0, 8.0, 16.0 }) { }

    /// <summary>For label-using one-step methods, also attack with the predicted label and compare (section 4.2).</summary>
    public bool CheckLabelLeaking { get; set; } = true;

    /// <summary>
    /// Checks for gradient masking (<see cref="MaskingChecks"/>): by default those the evaluation's own figures allow plus
    /// zero gradients and a random model; <see cref="GradientMaskingChecks.Full"/> also runs the probes every check needs.
    /// </summary>
    public GradientMaskingChecks MaskingChecks { get; set; } = GradientMaskingChecks.FromResults;

    /// <summary>Epsilon (pixel units) of the large-epsilon probe of <see cref="GradientMaskingChecks.Full"/>: 128 reaches mid-grey from any image.</summary>
    public double MaskingLargeEpsilon { get; set; } = 128;

    /// <summary>Queries of the Square probe of <see cref="GradientMaskingChecks.Full"/>.</summary>
    public int MaskingSquareQueries { get; set; } = 1000;
}

/// <summary>
/// Robustness of one classifier: clean accuracy, then accuracy on each method's adversarial examples at each epsilon
/// (top-1, top-5, 95% intervals, ratio to clean), label-leak checks and gradient-masking warnings. For one-step
/// methods the gradient is computed once per batch and reused for every epsilon.
/// </summary>
public sealed class RobustnessEvaluator
{
    private readonly RobustnessOptions _options;

    /// <summary>Creates an evaluator; the options are checked here.</summary>
    /// <param name="options">Methods, epsilons and the rest; null takes the defaults.</param>
    public RobustnessEvaluator(RobustnessOptions? options = null)
    {
        _options = options ?? new RobustnessOptions();
        _options.Validate();
        if (!Enum.IsDefined(_options.MaskingChecks))
            throw new ArgumentOutOfRangeException(nameof(RobustnessOptions.MaskingChecks), _options.MaskingChecks, "MaskingChecks must be Off, FromResults or Full.");
        PixelEpsilon.Check(_options.MaskingLargeEpsilon, nameof(RobustnessOptions.MaskingLargeEpsilon));
        if (_options.MaskingSquareQueries < 1)
            throw new ArgumentOutOfRangeException(nameof(RobustnessOptions.MaskingSquareQueries), _options.MaskingSquareQueries, "The Square probe needs at least 1 query.");
    }

    private sealed class Tally
    {
        public long Top1, TopK, Count, Unmoved;
    }

    /// <summary>Evaluates one model on labelled images, in memory or read batch by batch ahead of the model (<see cref="EvaluationOptions.Prefetch"/>).</summary>
    /// <param name="model">The classifier (images to logits); put back in its own mode afterwards.</param>
    /// <param name="data">The labelled images (an <see cref="ImageSet"/> or any <see cref="IImageSource"/>).</param>
    /// <param name="modelName">Name in the report.</param>
    /// <param name="device">Where to run; null uses the device of the model's parameters (the CPU when it has none).</param>
    public RobustnessReport Evaluate(Module<Tensor, Tensor> model, IImageSource data, string modelName = "model", Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (data.RowCount == 0) throw new ArgumentException("The evaluation data set is empty.", nameof(data));
        var o = _options;
        var dev = EvaluationLoop.DeviceFor(model, device);
        var infos = o.Methods.Select(AttackRegistry.Describe).ToList();
        var tallies = new Dictionary<(string, double), Tally>();
        Tally Get(string m, double e) => tallies.TryGetValue((m, e), out var t) ? t : tallies[(m, e)] = new Tally();
        var clean = Get("clean", 0);
        var predictedKey = (string name) => name + " (predicted label)";
        string stage = $"evaluating {modelName}";
        var tracker = new ProgressTracker(o.Progress, data.RowCount, o.BatchSize, infos.Count);
        // The per-example worst case over every attack is reported beside an ensemble, when there is more than it to compare.
        bool worstCase = infos.Any(i => i.IsEnsemble) && infos.Count(i => !i.IsRandomBaseline) >= 2;
        var blackBox = ScoreFunctionModel.Inside(model);
        long queriesBefore = blackBox?.Queries ?? 0;
        var attacks = EvaluationLoop.AttacksFor(o, model, modelName);
        var evidence = new MaskingEvidence { GradientsMeasured = blackBox is null && o.MaskingChecks != GradientMaskingChecks.Off };
        var probes = o.MaskingChecks == GradientMaskingChecks.Full && blackBox is null ? Probes(o) : new List<(string Name, MethodKind Kind, Attack Attack)>();
        var largeProbe = probes.Count > 0 ? LargeEpsilonProbe(o) : null;
        // Scoring and every attack run the model as o.Compute asks (one replica, synced once: the weights do not change here).
        var runner = Attack.Runner(model, o.Compute, evaluationOnly: true);
        using (ModelMode.Set(model, training: false))
        using (ComputeModel.HoldFor(runner))
            EvaluationLoop.ForEachBatch(data, o, dev, tracker, stage, (x, y, start, count) =>
            {
                Tensor predicted;
                using (no_grad())
                {
                    var logits = runner.call(x);
                    CheckFinite(logits, modelName, start);
                    predicted = logits.argmax(1);
                    Add(clean, logits, y, null, null);
                    // A model that draws random numbers answers twice differently; once is enough to know.
                    if (o.MaskingChecks != GradientMaskingChecks.Off && evidence.RepeatDifference is null)
                        evidence.RepeatDifference = runner.call(x).Minus(logits).abs().max().to(ScalarType.Float64).item<double>();
                }
                if (evidence.GradientsMeasured) CountZeroGradients(runner, x, y, evidence);
                // Per epsilon, which examples every attack so far left classified correctly (the worst case per example).
                var robustToAll = o.Epsilons.Select(_ => ones(count, dtype: ScalarType.Bool, device: x.device)).ToArray();
                var topKToAll = o.Epsilons.Select(_ => ones(count, dtype: ScalarType.Bool, device: x.device)).ToArray();
                // The same per example for the gradient attacks and for the gradient-free ones, for the masking checks.
                var robustToGradient = o.Epsilons.Select(_ => ones(count, dtype: ScalarType.Bool, device: x.device)).ToArray();
                var robustToGradientFree = o.Epsilons.Select(_ => ones(count, dtype: ScalarType.Bool, device: x.device)).ToArray();
                bool anyGradient = false, anyGradientFree = false;
                Tensor[]? Track(MethodKind kind)
                {
                    anyGradient |= kind is MethodKind.OneStep or MethodKind.Iterative or MethodKind.TargetedIterative;
                    anyGradientFree |= kind == MethodKind.GradientFree;
                    return kind switch { MethodKind.OneStep or MethodKind.Iterative or MethodKind.TargetedIterative => robustToGradient, MethodKind.GradientFree => robustToGradientFree, _ => null };
                }
                foreach (var info in infos)
                {
                    var attack = attacks[info.Name];
                    if (attack is IEnsembleAttack ensemble)
                    {
                        Score(info.Name, GenerateEnsemble(attack, ensemble, x, y), x, y, robustToAll, topKToAll);
                        tracker.MethodDone(stage, info.Name, o.Epsilons);
                        continue;
                    }
                    // One-step methods reuse a single gradient for every epsilon (Attack.GenerateForEpsilons).
                    Score(info.Name, attack.GenerateForEpsilons(runner, x, y, o.Epsilons), x, y, info.IsRandomBaseline ? null : robustToAll, topKToAll, Track(KindOf(info)));
                    if (o.CheckLabelLeaking && info.UsesTrueLabel && info.IsOneStep && blackBox is null)
                        Score(predictedKey(info.Name), attack.GenerateForEpsilons(runner, x, predicted, o.Epsilons), x, y);
                    tracker.MethodDone(stage, info.Name, o.Epsilons);
                }
                foreach (var (name, kind, probe) in probes)
                    Score(ProbeKey(name), probe.GenerateForEpsilons(runner, x, y, o.Epsilons), x, y, robustToAll: null, topKToAll: null, Track(kind));
                if (largeProbe is not null)
                    using (no_grad())
                    {
                        var adv = largeProbe.Generate(runner, x, y);
                        var logits = runner.call(adv);
                        var t = Get(ProbeKey(largeProbe.Name), o.MaskingLargeEpsilon);
                        t.Top1 += logits.argmax(1).eq(y).sum().item<long>();
                        t.Count += count;
                    }
                if (anyGradient && anyGradientFree)
                    for (int i = 0; i < o.Epsilons.Count; i++)
                    {
                        evidence.GradientFreeOnly.TryGetValue(o.Epsilons[i], out long before);
                        evidence.GradientFreeOnly[o.Epsilons[i]] = before + robustToGradient[i].logical_and(robustToGradientFree[i].logical_not()).sum().item<long>();
                    }
                if (worstCase)
                    for (int i = 0; i < o.Epsilons.Count; i++)
                    {
                        var t = Get(WorstCase, o.Epsilons[i]);
                        t.Top1 += robustToAll[i].sum().item<long>();
                        t.TopK += topKToAll[i].sum().item<long>();
                        t.Count += count;
                    }
            });

        void Score(string method, Tensor[] advs, Tensor x, Tensor y, Tensor[]? robustToAll = null, Tensor[]? topKToAll = null, Tensor[]? robustToKind = null)
        {
            using var _ = no_grad();
            for (int i = 0; i < advs.Length; i++)
            {
                var logits = runner.call(advs[i]);
                Add(Get(method, o.Epsilons[i]), logits, y, advs[i], x);
                robustToAll?[i].logical_and_(logits.argmax(1).eq(y));
                robustToKind?[i].logical_and_(logits.argmax(1).eq(y));
                topKToAll?[i].logical_and_(logits.topk((int)Math.Min(o.TopK, logits.shape[1])).indexes.eq(y.unsqueeze(1)).any(1));
            }
        }

        // The ensemble per epsilon, noting the examples only its score-based part (Square) broke after gradient components ran.
        Tensor[] GenerateEnsemble(Attack attack, IEnsembleAttack ensemble, Tensor x, Tensor y)
        {
            int scoreBased = ensemble.Components.Select((c, i) => (c, i)).FirstOrDefault(p => !p.c.NeedsGradients && p.i > 0, (null!, -1)).Item2;
            var advs = new Tensor[o.Epsilons.Count];
            for (int i = 0; i < advs.Length; i++)
            {
                advs[i] = attack.Generate(runner, x, y, HeldScalars.Full(x.shape[0], o.Epsilons[i], ScalarType.Float32, x.device));
                if (scoreBased >= 0) Get(SquareOnly(attack.Name), o.Epsilons[i]).Top1 += ensemble.LastBrokenBy.Count(c => c == scoreBased);
            }
            return advs;
        }

        void Add(Tally t, Tensor logits, Tensor y, Tensor? adv, Tensor? x)
        {
            var counted = TopKCount.Of(logits, y, o.TopK);
            t.Top1 += counted.Top1;
            t.TopK += counted.TopK;
            t.Count += y.shape[0];
            // Unmoved and still right: an image already misclassified is returned as it is by design (Square, APGD), not masked.
            if (adv is not null && x is not null)
                t.Unmoved += adv.Minus(x).abs().flatten(1).amax(1).EqualTo(0).logical_and(logits.argmax(1).eq(y)).sum().item<long>();
        }

        foreach (var info in infos)
            foreach (var eps in o.Epsilons)
                if (!info.IsEnsemble && tallies.TryGetValue((info.Name, eps), out var t))
                    evidence.Results.Add(new MethodResult(info.Name, KindOf(info), eps, t.Top1, t.Count));
        foreach (var (name, kind, _) in probes)
            foreach (var eps in o.Epsilons)
                evidence.Results.Add(new MethodResult(name, kind, eps, tallies[(ProbeKey(name), eps)].Top1, tallies[(ProbeKey(name), eps)].Count));
        if (largeProbe is not null)
        {
            var t = tallies[(ProbeKey(largeProbe.Name), o.MaskingLargeEpsilon)];
            evidence.LargeEpsilon = new MethodResult(largeProbe.Name, MethodKind.Iterative, o.MaskingLargeEpsilon, t.Top1, t.Count);
        }
        var checks = o.MaskingChecks == GradientMaskingChecks.Off ? new List<MaskingCheck>() : MaskingChecks.Judge(evidence);
        var report = BuildReport(modelName, tallies, infos, predictedKey, checks);
        report.BlackBoxQueries = blackBox is null ? null : blackBox.Queries - queriesBefore;
        return report;
    }

    /// <summary>Row name of the per-example worst case over every evaluated attack (random baselines excluded).</summary>
    public const string WorstCase = "worst case";

    private static string SquareOnly(string ensemble) => ensemble + " (square only)";

    private static string ProbeKey(string probe) => "masking probe: " + probe;

    /// <summary>How the masking checks compare a method: one-step, iterative, gradient-free, noise or an ensemble.</summary>
    private static MethodKind KindOf(AttackInfo info) =>
        info.IsRandomBaseline ? MethodKind.Noise
        : info.IsEnsemble ? MethodKind.Ensemble
        : !info.NeedsGradients ? MethodKind.GradientFree
        : info.IsOneStep ? MethodKind.OneStep
        : info.UsesTrueLabel ? MethodKind.Iterative
        : MethodKind.TargetedIterative;

    /// <summary>The probes of <see cref="GradientMaskingChecks.Full"/>: one attack of each kind the checks compare, at the evaluation's epsilons.</summary>
    private static List<(string Name, MethodKind Kind, Attack Attack)> Probes(RobustnessOptions o)
    {
        AttackOptions Shared(AttackOptions options)
        {
            options.InputRange = o.InputRange;
            options.Seed = o.Seed;
            options.Compute = o.Compute;
            return options;
        }
        return new List<(string, MethodKind, Attack)>
        {
            ("fgsm", MethodKind.OneStep, AttackRegistry.Create(AttackMethod.Fgsm, Shared(new AttackOptions()))),
            ("pgd-linf (20 steps)", MethodKind.Iterative, AttackRegistry.Create(AttackMethod.PgdLInf, Shared(new PgdOptions { Steps = 20 }))),
            ("random-sign", MethodKind.Noise, AttackRegistry.Create(AttackMethod.RandomSign, Shared(new AttackOptions()))),
            ($"square ({o.MaskingSquareQueries} queries)", MethodKind.GradientFree, AttackRegistry.Create(AttackMethod.Square, Shared(new SquareOptions { Queries = o.MaskingSquareQueries }))),
        };
    }

    /// <summary>PGD from the clean image (no random start, so a zero gradient cannot hide behind the start's noise) at the large epsilon.</summary>
    private static Attack LargeEpsilonProbe(RobustnessOptions o) => AttackRegistry.Create(AttackMethod.PgdLInf, new PgdOptions
    {
        Epsilon = o.MaskingLargeEpsilon, Steps = 20, RandomStart = false, InputRange = o.InputRange, Seed = o.Seed, Compute = o.Compute,
    });

    /// <summary>Counts the correctly classified images of the batch and those among them whose input gradient is all zero.</summary>
    private static void CountZeroGradients(Module<Tensor, Tensor> runner, Tensor x, Tensor y, MaskingEvidence evidence)
    {
        using var grad = enable_grad();
        var input = x.detach().requires_grad_(true);
        var logits = runner.call(input);
        var correct = logits.detach().argmax(1).eq(y);
        var loss = torch.nn.functional.cross_entropy(logits, y, reduction: Reduction.Sum);
        // No differentiable path at all (a detached input) is the extreme case: every gradient is zero.
        var zero = loss.requires_grad
            ? torch.autograd.grad(new[] { loss }, new[] { input }, allow_unused: true)[0] is { } g && g.numel() > 0 ? g.flatten(1).abs().amax(1).EqualTo(0) : ones_like(correct)
            : ones_like(correct);
        evidence.CorrectClean += correct.sum().item<long>();
        evidence.ZeroGradient += zero.logical_and(correct).sum().item<long>();
    }

    private RobustnessReport BuildReport(string modelName, Dictionary<(string, double), Tally> tallies, List<AttackInfo> infos, Func<string, string> predictedKey, List<MaskingCheck> checks)
    {
        var o = _options;
        var clean = tallies[("clean", 0)];
        double cleanTop1 = (double)clean.Top1 / clean.Count;
        AccuracyRow Row(string method, double eps, Tally t)
        {
            double p1 = (double)t.Top1 / t.Count, p5 = (double)t.TopK / t.Count;
            return new AccuracyRow(modelName, method, eps, (int)t.Count, p1, p5, cleanTop1 > 0 ? p1 / cleanTop1 : double.NaN);
        }
        var rows = new List<AccuracyRow> { Row("clean", 0, clean) };
        var leaks = new List<LabelLeakRow>();
        var warnings = new List<string>();
        foreach (var info in infos)
            foreach (var eps in o.Epsilons)
            {
                var t = tallies[(info.Name, eps)];
                var row = Row(info.Name, eps, t);
                rows.Add(row);
                if (eps > 0 && t.Unmoved >= 3 && t.Unmoved > t.Top1 / 2)
                    warnings.Add(string.Create(CultureInfo.InvariantCulture, $"{info.Name} at eps {eps} left {t.Unmoved} of the {t.Top1} images it did not fool unchanged: the input gradient is zero there. ") +
                        "This is gradient masking (saturated or non-differentiable model), not robustness; check the model with a gradient-free or random method.");
                if (tallies.TryGetValue((SquareOnly(info.Name), eps), out var squareOnly) && squareOnly.Top1 > t.Count / 200)
                    warnings.Add($"{info.Name} at eps {eps}: Square, which uses no gradients, broke {squareOnly.Top1} of {t.Count} examples that APGD-CE and APGD-T " +
                        "could not. A black-box search succeeding where white-box attacks fail is a sign of gradient masking: trust the ensemble's figure, not the gradient attacks'.");
                if (tallies.TryGetValue((predictedKey(info.Name), eps), out var pred))
                {
                    var pr = Row(predictedKey(info.Name), eps, pred);
                    leaks.Add(new LabelLeakRow(modelName, info.Name, eps, cleanTop1, row.Top1, pr.Top1) { MaskingSuspected = checks.Any(c => c.Failed) });
                }
            }
        foreach (var eps in o.Epsilons)
            if (tallies.TryGetValue((WorstCase, eps), out var worst))
            {
                rows.Add(Row(WorstCase, eps, worst));
            }
        warnings.AddRange(checks.Where(c => c.Failed).Select(c => $"Gradient masking check '{c.Check}' failed: {c.Finding}"));
        return new RobustnessReport { Model = modelName, Rows = rows, LabelLeaks = leaks, Warnings = warnings, MaskingChecks = checks };
    }

    internal static void CheckFinite(Tensor logits, string model, int start)
    {
        if (!logits.isfinite().all().item<bool>())
            throw new InvalidOperationException(
                $"Model '{model}' returned NaN or infinite outputs for the batch starting at row {start}. Its weights may have diverged, or the inputs " +
                "contain NaN; an accuracy computed from such outputs would be meaningless.");
    }
}
