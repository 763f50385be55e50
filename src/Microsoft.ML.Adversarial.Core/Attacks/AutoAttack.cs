using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// AutoAttack (Croce and Hein, ICML 2020), L-inf: APGD-CE, then targeted APGD-DLR, then FAB-T, then Square, each run only on the
/// examples every earlier one left classified correctly. An example's result is the first successful component's
/// adversarial image (the worst case over the ensemble), or, when none succeeded, the last component's best point
/// (still classified correctly); so the ensemble's robust accuracy is at most each component's. FAB-T counts an example
/// as broken only when its minimally distorted point lies within epsilon.
/// </summary>
public sealed class AutoAttack : Attack, IEnsembleAttack
{
    private readonly Attack[] _components;

    /// <summary>Creates the ensemble.</summary>
    /// <param name="options">Its settings; null takes the defaults (standard version, eps 16).</param>
    public AutoAttack(AutoAttackOptions? options = null)
        : base(options?.Norm == PgdNorm.L2 ? AttackMethod.AutoAttackL2 : options?.Version switch { AutoAttackVersion.Quick => AttackMethod.AutoAttackQuick, AutoAttackVersion.Rand => AttackMethod.AutoAttackRand, AutoAttackVersion.Plus => AttackMethod.AutoAttackPlus, _ => AttackMethod.AutoAttack },
            options ?? new AutoAttackOptions())
    {
        _components = BuildComponents().ToArray();
    }

    /// <summary>This attack's settings.</summary>
    public new AutoAttackOptions Options => (AutoAttackOptions)base.Options;

    /// <summary>Attacks the true labels when given, the prediction otherwise.</summary>
    public override bool UsesLabels => true;

    /// <summary>False when <see cref="AutoAttackOptions.GradientFree"/> leaves only Square.</summary>
    public override bool NeedsGradients => !Options.GradientFree;

    /// <summary>The components in the order they run.</summary>
    public IReadOnlyList<Attack> Components => _components;

    /// <summary>For each example of the last <see cref="Attack.Generate"/> call, the index in <see cref="Components"/> of the component that broke it; -1 when none did (or the clean image was already misclassified).</summary>
    public int[] LastBrokenBy { get; private set; } = Array.Empty<int>();

    /// <summary>For each example of the last call, whether the clean image was already misclassified.</summary>
    public bool[] LastCleanWrong { get; private set; } = Array.Empty<bool>();

    private IEnumerable<Attack> BuildComponents()
    {
        var o = Options;
        bool quick = o.Version == AutoAttackVersion.Quick;
        int iterations = o.ApgdIterations ?? (quick ? 50 : 100);
        if (o.Version == AutoAttackVersion.Rand)
        {
            int eot = o.EotSamples > 1 ? o.EotSamples : 20;
            var ce = Shared(new ApgdOptions { Loss = ApgdLoss.CrossEntropy, Iterations = iterations, Restarts = 1 });
            var dlr = Shared(new ApgdOptions { Loss = ApgdLoss.Dlr, Iterations = iterations, Restarts = 1 });
            ce.EotSamples = dlr.EotSamples = eot;
            yield return new Apgd(ce);
            yield return new Apgd(dlr);
            yield break;
        }
        if (o.Version == AutoAttackVersion.Plus && !o.GradientFree)
        {
            int targetsPlus = o.TargetClasses ?? 9;
            yield return new Apgd(Shared(new ApgdOptions { Loss = ApgdLoss.CrossEntropy, Iterations = iterations, Restarts = 5 }));
            yield return new Apgd(Shared(new ApgdOptions { Loss = ApgdLoss.Dlr, Iterations = iterations, Restarts = 5 }));
            yield return new Fab(Shared(new FabOptions { Targeted = false, Iterations = o.FabIterations ?? 100, Restarts = 5 }));
            yield return SquarePart(o, quick);
            yield return new Apgd(Shared(new ApgdOptions { Loss = ApgdLoss.TargetedDlr, Iterations = iterations, TargetClasses = targetsPlus }));
            yield return new Fab(Shared(new FabOptions { Iterations = o.FabIterations ?? 100, TargetClasses = targetsPlus }));
            yield break;
        }
        if (!o.GradientFree)
        {
            yield return new Apgd(Shared(new ApgdOptions { Loss = ApgdLoss.CrossEntropy, Iterations = iterations, Restarts = 1 }));
            yield return new Apgd(Shared(new ApgdOptions { Loss = ApgdLoss.TargetedDlr, Iterations = iterations, TargetClasses = o.TargetClasses ?? (quick ? 3 : 9) }));
            yield return new Fab(Shared(new FabOptions { Iterations = o.FabIterations ?? (quick ? 25 : 100), TargetClasses = o.TargetClasses ?? (quick ? 3 : 9) }));
        }
        yield return SquarePart(o, quick);
    }

    private Square SquarePart(AutoAttackOptions o, bool quick)
    {
        // The score-based part takes no gradients: EOT and BPDA are the gradient components' settings.
        var square = Shared(new SquareOptions { Queries = o.SquareQueries ?? (quick ? 1000 : 5000), });
        square.EotSamples = 1;
        square.BpdaLayers = Array.Empty<string>();
        return new Square(square);
    }

    private T Shared<T>(T options) where T : AttackOptions
    {
        base.Options.CopySharedTo(options);
        // Every component measures the ball in the ensemble's norm.
        switch (options)
        {
            case ApgdOptions apgd: apgd.Norm = Options.Norm; break;
            case FabOptions fab: fab.Norm = Options.Norm; break;
            case SquareOptions square: square.Norm = Options.Norm; break;
        }
        return options;
    }

    /// <summary>Restarts the random streams of the ensemble and of every component, so the next call repeats the first.</summary>
    public override void ResetRandom()
    {
        base.ResetRandom();
        foreach (var component in _components) component.ResetRandom();
    }

    /// <inheritdoc/>
    protected override void ValidateOptions()
    {
        base.ValidateOptions();
        if (Options.ApgdIterations is < 1) throw new ArgumentOutOfRangeException(nameof(AutoAttackOptions.ApgdIterations), Options.ApgdIterations, "APGD needs at least 1 iteration.");
        if (Options.TargetClasses is < 1) throw new ArgumentOutOfRangeException(nameof(AutoAttackOptions.TargetClasses), Options.TargetClasses, "APGD-T needs at least 1 target class.");
        if (Options.FabIterations is < 1) throw new ArgumentOutOfRangeException(nameof(AutoAttackOptions.FabIterations), Options.FabIterations, "FAB-T needs at least 1 iteration.");
        if (Options.SquareQueries is < 1) throw new ArgumentOutOfRangeException(nameof(AutoAttackOptions.SquareQueries), Options.SquareQueries, "Square needs at least 1 query.");
        if (Options.Norm == PgdNorm.L2 && Options.Version != AutoAttackVersion.Standard)
            throw new ArgumentException($"AutoAttack in L2 is the standard version (autoattack-l2); the {Options.Version} version runs in L-inf.", nameof(AutoAttackOptions.Norm));
    }

    /// <inheritdoc/>
    protected override Tensor Run(AttackBatch b)
    {
        var cleanLogits = b.Logits(b.Clean);
        var y = b.HasLabels ? b.TrueLabels : AttackBatch.Predicted(cleanLogits);
        var robust = AttackBatch.Predicted(cleanLogits).eq(y);
        LastCleanWrong = robust.logical_not().cpu().data<bool>().ToArray();
        var brokenBy = new int[b.Count];
        Array.Fill(brokenBy, -1);
        var adv = b.Clean.clone();
        for (int c = 0; c < _components.Length; c++)
        {
            using var scope = NewDisposeScope();
            var index = robust.nonzero().squeeze(1);
            if (index.numel() == 0) break;
            var sub = b.Subset(index, y.index_select(0, index));
            var found = _components[c].Generate(b.Model, sub.Clean, sub.TrueLabels, sub.Epsilon);
            var fooled = sub.Logits(found).argmax(1).ne(sub.TrueLabels);
            var broken = index.masked_select(fooled);
            // Broken examples keep this component's adversarial image; the others its best point until a later one runs.
            adv.index_copy_(0, index, found);
            robust.index_fill_(0, broken, HeldScalars.False);
            foreach (var i in broken.cpu().data<long>()) brokenBy[i] = c;
        }
        LastBrokenBy = brokenBy;
        return adv;
    }
}
