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
                }
                // Per epsilon, which examples every attack so far left classified correctly (the worst case per example).
                var robustToAll = o.Epsilons.Select(_ => ones(count, dtype: ScalarType.Bool, device: x.device)).ToArray();
                var topKToAll = o.Epsilons.Select(_ => ones(count, dtype: ScalarType.Bool, device: x.device)).ToArray();
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
                    Score(info.Name, attack.GenerateForEpsilons(runner, x, y, o.Epsilons), x, y, info.IsRandomBaseline ? null : robustToAll, topKToAll);
                    if (o.CheckLabelLeaking && info.UsesTrueLabel && info.IsOneStep && blackBox is null)
                        Score(predictedKey(info.Name), attack.GenerateForEpsilons(runner, x, predicted, o.Epsilons), x, y);
                    tracker.MethodDone(stage, info.Name, o.Epsilons);
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

        void Score(string method, Tensor[] advs, Tensor x, Tensor y, Tensor[]? robustToAll = null, Tensor[]? topKToAll = null)
        {
            using var _ = no_grad();
            for (int i = 0; i < advs.Length; i++)
            {
                var logits = runner.call(advs[i]);
                Add(Get(method, o.Epsilons[i]), logits, y, advs[i], x);
                robustToAll?[i].logical_and_(logits.argmax(1).eq(y));
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
            if (adv is not null && x is not null)
                t.Unmoved += adv.Minus(x).abs().flatten(1).amax(1).EqualTo(0).sum().item<long>();
        }

        var report = BuildReport(modelName, tallies, infos, predictedKey);
        report.BlackBoxQueries = blackBox is null ? null : blackBox.Queries - queriesBefore;
        return report;
    }

    /// <summary>Row name of the per-example worst case over every evaluated attack (random baselines excluded).</summary>
    public const string WorstCase = "worst case";

    private static string SquareOnly(string ensemble) => ensemble + " (square only)";

    private RobustnessReport BuildReport(string modelName, Dictionary<(string, double), Tally> tallies, List<AttackInfo> infos, Func<string, string> predictedKey)
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
                if (eps > 0 && t.Unmoved > t.Count / 2)
                    warnings.Add($"{info.Name} at eps {eps} left {t.Unmoved} of {t.Count} images unchanged: the input gradient is zero there. " +
                        "This is gradient masking (saturated or non-differentiable model), not robustness; check the model with a gradient-free or random method.");
                if (tallies.TryGetValue((SquareOnly(info.Name), eps), out var squareOnly) && squareOnly.Top1 > t.Count / 200)
                    warnings.Add($"{info.Name} at eps {eps}: Square, which uses no gradients, broke {squareOnly.Top1} of {t.Count} examples that APGD-CE and APGD-T " +
                        "could not. A black-box search succeeding where white-box attacks fail is a sign of gradient masking: trust the ensemble's figure, not the gradient attacks'.");
                if (tallies.TryGetValue((predictedKey(info.Name), eps), out var pred))
                {
                    var pr = Row(predictedKey(info.Name), eps, pred);
                    leaks.Add(new LabelLeakRow(modelName, info.Name, eps, cleanTop1, row.Top1, pr.Top1));
                }
            }
        foreach (var eps in o.Epsilons)
            if (tallies.TryGetValue((WorstCase, eps), out var worst))
            {
                rows.Add(Row(WorstCase, eps, worst));
            }
        return new RobustnessReport { Model = modelName, Rows = rows, LabelLeaks = leaks, Warnings = warnings };
    }

    internal static void CheckFinite(Tensor logits, string model, int start)
    {
        if (!logits.isfinite().all().item<bool>())
            throw new InvalidOperationException(
                $"Model '{model}' returned NaN or infinite outputs for the batch starting at row {start}. Its weights may have diverged, or the inputs " +
                "contain NaN; an accuracy computed from such outputs would be meaningless.");
    }
}
