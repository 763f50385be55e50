namespace Microsoft.ML.Adversarial;

/// <summary>The loss APGD maximises.</summary>
public enum ApgdLoss
{
    /// <summary>Cross-entropy of the true class ("apgd-ce").</summary>
    CrossEntropy,
    /// <summary>Difference of logits ratio, <c>-(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3)</c> ("apgd-dlr").</summary>
    Dlr,
    /// <summary>Targeted DLR, <c>-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)</c>, over the clean image's top classes ("apgd-t").</summary>
    TargetedDlr,
}

/// <summary>Settings of Auto-PGD (Croce and Hein, ICML 2020); the defaults are AutoAttack's "standard" budget.</summary>
public class ApgdOptions : AttackOptions
{
    /// <summary>The loss APGD maximises (default cross-entropy, "apgd-ce").</summary>
    public ApgdLoss Loss { get; set; } = ApgdLoss.CrossEntropy;

    /// <summary>
    /// The ball: L-inf (steps along sign(g)) or L2 (steps along g / ||g||_2, epsilon an L2 radius in pixel units,
    /// "apgd-ce-l2", "apgd-t-l2"). Default L-inf.
    /// </summary>
    public PgdNorm Norm { get; set; } = PgdNorm.LInf;

    /// <summary>Iterations per run (N_iter); the checkpoints are fractions of it. Default 100.</summary>
    public int Iterations { get; set; } = 100;

    /// <summary>Runs from new random starts, each on the examples still classified correctly. Default 1.</summary>
    public int Restarts { get; set; } = 1;

    /// <summary>Share of the steps since the last checkpoint that must have raised the loss for the step size to be kept (rho). Default 0.75.</summary>
    public double Rho { get; set; } = 0.75;

    /// <summary>Targeted DLR only: how many target classes, the clean image's 2nd, 3rd, ... most likely. Default 9 (all of 10 classes).</summary>
    public int TargetClasses { get; set; } = 9;

    /// <summary>The step count is <see cref="Iterations"/>; APGD sets its own step size (2 eps, halved at checkpoints).</summary>
    public override void ApplySteps(string method, int? iterations, double? stepSize)
    {
        RefuseStepSize(method, stepSize, "Auto-PGD, which adapts its step size (2 eps, halved at checkpoints)");
        if (iterations is int n) Iterations = n;
    }
}
