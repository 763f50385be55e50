namespace Microsoft.ML.Adversarial;

/// <summary>The budgets of an AutoAttack run.</summary>
public enum AutoAttackVersion
{
    /// <summary>AutoAttack's standard L-inf budgets: APGD-CE 100 iterations; APGD-T 100 iterations on each of 9 target classes; FAB-T 100 iterations on each of 9 target classes; Square 5000 queries.</summary>
    Standard,
    /// <summary>About a tenth of the work: APGD-CE 50 iterations; APGD-T 50 iterations on 3 target classes; FAB-T 25 iterations on 3 target classes; Square 1000 queries.</summary>
    Quick,
    /// <summary>
    /// The reference's 'plus' version: APGD-CE and APGD-DLR with 5 restarts each, untargeted FAB with 5 restarts, Square
    /// (5000 queries), APGD-T and FAB-T (9 target classes), in that order; several times the standard cost.
    /// </summary>
    Plus,
    /// <summary>
    /// The reference's 'rand' version, for models that draw random numbers: APGD-CE and untargeted APGD-DLR, 100
    /// iterations, each gradient the mean of 20 passes (Expectation over Transformation; <see cref="AttackOptions.EotSamples"/>
    /// above 1 replaces the 20). No FAB or Square.
    /// </summary>
    Rand,
}

/// <summary>Settings of the AutoAttack ensemble; null budgets take the version's value.</summary>
public class AutoAttackOptions : AttackOptions
{
    /// <summary>The budgets to run (default standard).</summary>
    public AutoAttackVersion Version { get; set; } = AutoAttackVersion.Standard;

    /// <summary>
    /// The norm of every component's ball: L-inf (default) or L2 (epsilon an L2 radius in pixel units), the latter for the
    /// standard version only (<c>autoattack-l2</c>: APGD-CE, APGD-T, FAB-T and Square in L2).
    /// </summary>
    public PgdNorm Norm { get; set; } = PgdNorm.LInf;

    /// <summary>APGD iterations of each run (APGD-CE and APGD-T); null takes the version's.</summary>
    public int? ApgdIterations { get; set; }

    /// <summary>Target classes of APGD-T and FAB-T; null takes the version's.</summary>
    public int? TargetClasses { get; set; }

    /// <summary>FAB-T iterations per target class; null takes the version's.</summary>
    public int? FabIterations { get; set; }

    /// <summary>Square's query budget per example; null takes the version's.</summary>
    public int? SquareQueries { get; set; }

    /// <summary>Run only the score-based part (Square), for models without gradients (a <see cref="ScoreFunctionModel"/>).</summary>
    public bool GradientFree { get; set; }

    /// <summary>
    /// The step count is the iterations of APGD and FAB (as in the reference AutoAttack's <c>n_iter</c>); Square's budget
    /// stays <see cref="SquareQueries"/>. The components set their own step sizes.
    /// </summary>
    public override void ApplySteps(string method, int? iterations, double? stepSize)
    {
        RefuseStepSize(method, stepSize, "an ensemble whose components set their own step sizes");
        if (iterations is int n) ApgdIterations = FabIterations = n;
    }

    /// <summary>The ensemble's score-based part (Square) alone, for a model that returns scores only.</summary>
    public override AttackOptions? ForScoresOnly()
    {
        // 'rand' is APGD only: it has no score-based part.
        if (Version == AutoAttackVersion.Rand) return null;
        var copy = (AutoAttackOptions)Clone();
        copy.GradientFree = true;
        return copy;
    }
}
