using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>Options of a transfer study: methods and epsilons as in the paper's Tables 4 and 6 by default.</summary>
public sealed class TransferOptions : EvaluationOptions
{
    /// <summary>The paper's Tables 4 and 6: FGSM, iter. basic and iter. l.l. at eps 16.</summary>
    public TransferOptions() : base(new[] { AttackMethod.Fgsm.Name, AttackMethod.IterBasic.Name, AttackMethod.IterLL.Name }, new[] { 16.0 }) { }
}

/// <summary>
/// Transferability (section 4.4): adversarial examples made on each source model, classified by every target.
/// Transfer rate = among the examples the source classifies correctly when clean and wrongly when adversarial, the
/// fraction the target misclassifies (Table 4). Error rate = the target's error on all adversarial examples (Table 6).
/// Each source's examples are generated once per batch and reused for every target.
/// </summary>
public sealed class TransferEvaluator
{
    private readonly TransferOptions _options;

    /// <summary>Creates an evaluator; the options are checked here.</summary>
    /// <param name="options">Methods, epsilons and the rest; null takes the defaults.</param>
    public TransferEvaluator(TransferOptions? options = null)
    {
        _options = options ?? new TransferOptions();
        _options.Validate();
    }

    private sealed class Tally
    {
        public long Count, Top1, TopK, SourceFooled, TransferredFooled;
    }

    /// <summary>Makes adversarial examples on every source and classifies them with every target.</summary>
    /// <param name="sources">Models the examples are made on, by name.</param>
    /// <param name="targets">Models that classify them, by name (may include the sources).</param>
    /// <param name="data">The labelled images.</param>
    /// <param name="device">Where to run; null uses the device of the first source model's parameters (the CPU when it has none), as <see cref="RobustnessEvaluator"/> does.</param>
    public TransferReport Evaluate(IReadOnlyDictionary<string, Module<Tensor, Tensor>> sources, IReadOnlyDictionary<string, Module<Tensor, Tensor>> targets,
        IImageSource data, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(sources);
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(data);
        if (sources.Count == 0 || targets.Count == 0) throw new ArgumentException("Give at least one source and one target model.");
        if (data.RowCount == 0) throw new ArgumentException("The evaluation data set is empty.", nameof(data));
        var o = _options;
        // Every source's attacks are made (and a gradient method refused for a black-box source) before any work.
        var attacksBySource = sources.ToDictionary(kv => kv.Key, kv => EvaluationLoop.AttacksFor(o, kv.Value, kv.Key));
        var dev = EvaluationLoop.DeviceFor(sources.Values.First(), device);
        var tallies = new Dictionary<(string, string, string, double), Tally>();
        var tracker = new ProgressTracker(o.Progress, data.RowCount, o.BatchSize, o.Methods.Count, sources.Count);
        using (ModelMode.Set(sources.Values.Concat(targets.Values), training: false))
        {
            // Every model runs as o.Compute asks (ComputeModel), prepared once for the whole study.
            var runners = sources.Concat(targets).Select(kv => kv.Value).Distinct().ToDictionary(m => m, m => Attack.Runner(m, o.Compute, evaluationOnly: true));
            using var hold = ComputeModel.HoldAll(runners.Values);
            foreach (var (sourceName, sourceModel) in sources)
            {
                var source = runners[sourceModel];
                string stage = $"transfer from {sourceName}";
                EvaluationLoop.ForEachBatch(data, o, dev, tracker, stage, (x, y, start, count) =>
                {
                    Tensor sourceRightClean;
                    using (no_grad()) sourceRightClean = source.call(x).argmax(1).eq(y);
                    foreach (var (method, attack) in attacksBySource[sourceName])
                    {
                        var advs = attack.GenerateForEpsilons(source, x, y, o.Epsilons);
                        using var _ = no_grad();
                        for (int i = 0; i < advs.Length; i++)
                        {
                            // Examples that fooled the source: right when clean, wrong when adversarial.
                            var fooled = sourceRightClean.logical_and(source.call(advs[i]).argmax(1).ne(y));
                            long fooledCount = fooled.sum().item<long>();
                            foreach (var (targetName, target) in targets)
                            {
                                var key = (sourceName, targetName, method, o.Epsilons[i]);
                                if (!tallies.TryGetValue(key, out var t)) tallies[key] = t = new Tally();
                                var counted = TopKCount.Of(runners[target].call(advs[i]), y, o.TopK);
                                t.Count += count;
                                t.Top1 += counted.Top1;
                                t.TopK += counted.TopK;
                                t.SourceFooled += fooledCount;
                                t.TransferredFooled += counted.Top1Right.logical_not().logical_and(fooled).sum().item<long>();
                            }
                        }
                        tracker.MethodDone(stage, method, o.Epsilons);
                    }
                });
            }
        }
        var rows = tallies.Select(kv =>
        {
            var (s, t, m, e) = kv.Key;
            var v = kv.Value;
            return new TransferRow(s, t, m, e, (int)v.Count, (double)v.Top1 / v.Count, (double)v.TopK / v.Count, (int)v.SourceFooled,
                v.SourceFooled > 0 ? (double)v.TransferredFooled / v.SourceFooled : double.NaN, 1 - (double)v.Top1 / v.Count);
        }).ToList();
        return new TransferReport { Rows = rows };
    }
}
