namespace Microsoft.ML.Adversarial;

/// <summary>Settings of the Square attack (Andriushchenko et al., ECCV 2020); the defaults are AutoAttack's.</summary>
public class SquareOptions : AttackOptions
{
    /// <summary>The norm of the ball: L-inf (default) or L2 (epsilon an L2 radius in pixel units, as for <c>apgd-ce-l2</c>).</summary>
    public PgdNorm Norm { get; set; } = PgdNorm.LInf;

    /// <summary>Most model queries per example, the first (initial stripes) included. Default 5000.</summary>
    public int Queries { get; set; } = 5000;

    /// <summary>Initial share of the pixels a square covers (p_init). Default 0.8.</summary>
    public double InitialFraction { get; set; } = 0.8;

    /// <summary>
    /// Stretch the square-size schedule (written for 10,000 queries) over <see cref="Queries"/>; AutoAttack runs it
    /// unstretched (false), which suits 5000 queries. Set it for small budgets so the squares still shrink.
    /// </summary>
    public bool RescaleSchedule { get; set; }

    /// <summary>Square makes one query per iteration: the step count is the query budget <see cref="Queries"/>.</summary>
    public override void ApplySteps(string method, int? iterations, double? stepSize)
    {
        RefuseStepSize(method, stepSize, "a random search whose square sizes follow a schedule (no step size)");
        if (iterations is int n) Queries = n;
    }
}
