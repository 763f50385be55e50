namespace Microsoft.ML.Adversarial;

/// <summary>Settings of FAB-T (Croce and Hein, ICML 2020); the defaults are AutoAttack's "standard" ones.</summary>
public class FabOptions : AttackOptions
{
    /// <summary>
    /// Towards the clean image's 2nd, 3rd, ... most likely classes in turn (FAB-T, the default), or, when false, towards
    /// whichever class's linearised boundary is closest at each iteration (untargeted FAB; <see cref="TargetClasses"/> unused).
    /// </summary>
    public bool Targeted { get; set; } = true;

    /// <summary>The norm distances are measured in: L-inf (default) or L2 (epsilon an L2 radius in pixel units, as for <c>apgd-ce-l2</c>).</summary>
    public PgdNorm Norm { get; set; } = PgdNorm.LInf;

    /// <summary>Iterations per run. Default 100.</summary>
    public int Iterations { get; set; } = 100;

    /// <summary>How many target classes, the clean image's 2nd, 3rd, ... most likely, one run each on the examples still unbroken. Default 9 (all of 10 classes).</summary>
    public int TargetClasses { get; set; } = 9;

    /// <summary>Runs per target class; the first starts at the clean image, later ones at a random point of half the epsilon ball. Default 1.</summary>
    public int Restarts { get; set; } = 1;

    /// <summary>Largest weight of the step projected from the clean image (alpha_max). Default 0.1.</summary>
    public double AlphaMax { get; set; } = 0.1;

    /// <summary>Overshoot of each projection onto the linearised boundary (eta). Default 1.05.</summary>
    public double Overshoot { get; set; } = 1.05;

    /// <summary>Backward step: an adversarial iterate moves to <c>x + beta (x_k - x)</c> to look for a closer crossing (beta). Default 0.9.</summary>
    public double Backward { get; set; } = 0.9;

    /// <summary>The step count is <see cref="Iterations"/> per target class; FAB's steps are projections, with no step size to set.</summary>
    public override void ApplySteps(string method, int? iterations, double? stepSize)
    {
        RefuseStepSize(method, stepSize, "FAB, whose steps are projections onto the linearised boundary (no step size)");
        if (iterations is int n) Iterations = n;
    }
}
