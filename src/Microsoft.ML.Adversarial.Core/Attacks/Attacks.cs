namespace Microsoft.ML.Adversarial;

/// <summary>
/// One-line construction of every method, epsilon in pixel units of [0, 255]:
/// <c>var adv = Attacks.StepLL(eps: 16).Generate(model, images);</c>
/// </summary>
public static class Attacks
{
    private static T With<T>(T options, double eps, InputRange? range, long? seed) where T : AttackOptions
    {
        options.Epsilon = eps;
        if (range is not null) options.InputRange = range;
        options.Seed = seed;
        return options;
    }

    /// <summary>FGSM (Goodfellow et al.): one step of size eps along the sign of the loss gradient for the true label.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    public static Fgsm Fgsm(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    /// <summary>FGSM with the model's predicted label instead of the true one (avoids label leaking, section 4.2).</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    public static FgsmPredicted FgsmPredicted(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    /// <summary>"Fast entropy": one step that raises the entropy of the prediction; needs no label.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    public static FastEntropy FastEntropy(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    /// <summary>"Fast grad. L2": one step along the L2-normalised loss gradient for the true label.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    public static FastGradL2 FastGradL2(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    /// <summary>"Fast grad. L-inf": one step along the L-infinity-normalised loss gradient for the true label.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    public static FastGradLInf FastGradLInf(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    /// <summary>"Step l.l.": one step towards the clean image's least-likely class; needs no label.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    public static StepLeastLikely StepLL(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    /// <summary>"Step rnd.": one step towards a random class other than the true one.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="seed">Seed of the method's random draws; null uses TorchSharp's global generator.</param>
    public static StepRandom StepRnd(double eps = 16, InputRange? range = null, long? seed = null) => new(With(new AttackOptions(), eps, range, seed));
    /// <summary>One step towards a class the caller chooses.</summary>
    /// <param name="targetClass">Index of the target class (0-based, below the model's class count).</param>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    public static StepTarget StepTarget(int targetClass, double eps = 16, InputRange? range = null) => new(targetClass, With(new AttackOptions(), eps, range, null));

    /// <summary>"Iter. basic": FGSM repeated with steps of alpha, each clipped to the epsilon ball; uses the true label.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="alpha">Step size in pixel units (the paper's 1).</param>
    /// <param name="iterations">Number of steps; null uses the paper's <c>min(eps + 4, 1.25 eps)</c>.</param>
    public static BasicIterative IterBasic(double eps = 16, InputRange? range = null, double alpha = 1, int? iterations = null)
        => new(With(new IterativeAttackOptions { Alpha = alpha, Iterations = iterations }, eps, range, null));

    /// <summary>"Iter. l.l.": step l.l. repeated with steps of alpha towards the clean image's least-likely class.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="alpha">Step size in pixel units (the paper's 1).</param>
    /// <param name="iterations">Number of steps; null uses the paper's <c>min(eps + 4, 1.25 eps)</c>.</param>
    public static IterativeLeastLikely IterLL(double eps = 16, InputRange? range = null, double alpha = 1, int? iterations = null)
        => new(With(new IterativeAttackOptions { Alpha = alpha, Iterations = iterations }, eps, range, null));

    /// <summary>A random baseline (appendix A): <c>X + eps * sign(N)</c>, N standard normal noise; no gradient, no label.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="seed">Seed of the method's random draws; null uses TorchSharp's global generator.</param>
    public static RandomSign RandomSign(double eps = 16, InputRange? range = null, long? seed = null) => new(With(new AttackOptions(), eps, range, seed));
    /// <summary>A random baseline (appendix A): <c>X + eps * T</c>, T a normal of std 0.5 truncated to [-1, 1] per pixel.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="seed">Seed of the method's random draws; null uses TorchSharp's global generator.</param>
    public static TruncatedNormalNoise TruncatedNormal(double eps = 16, InputRange? range = null, long? seed = null) => new(With(new AttackOptions(), eps, range, seed));

    /// <summary>Projected gradient descent (Madry et al., 2018): random start in the ball, then signed steps, projected back.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="norm">The ball's norm.</param>
    /// <param name="steps">Steps per restart.</param>
    /// <param name="restarts">Random restarts; each example keeps its strongest point.</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="seed">Seed of the method's random draws; null uses TorchSharp's global generator.</param>
    public static Pgd Pgd(double eps = 16, PgdNorm norm = PgdNorm.LInf, int steps = 10, int restarts = 1, InputRange? range = null, long? seed = null)
        => new(With(new PgdOptions { Norm = norm, Steps = steps, Restarts = restarts }, eps, range, seed));

    /// <summary>Auto-PGD (Croce and Hein, 2020): PGD with a step size that adapts at checkpoints.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="loss">The loss it maximises.</param>
    /// <param name="iterations">Iterations per run.</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="seed">Seed of the method's random draws; null uses TorchSharp's global generator.</param>
    public static Apgd Apgd(double eps = 8, ApgdLoss loss = ApgdLoss.CrossEntropy, int iterations = 100, InputRange? range = null, long? seed = null)
        => new(With(new ApgdOptions { Loss = loss, Iterations = iterations }, eps, range, seed));

    /// <summary>Square attack (Andriushchenko et al., 2020): a score-based search with random squares; needs no gradient.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="queries">Most model queries per example.</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="seed">Seed of the method's random draws; null uses TorchSharp's global generator.</param>
    public static Square Square(double eps = 8, int queries = 5000, InputRange? range = null, long? seed = null)
        => new(With(new SquareOptions { Queries = queries }, eps, range, seed));

    /// <summary>AutoAttack (Croce and Hein, 2020): APGD-CE, APGD-T, FAB-T and Square in turn, each example keeping the first point that fools the model.</summary>
    /// <param name="eps">Perturbation size in pixel units of [0, 255].</param>
    /// <param name="version">The budgets (standard or quick).</param>
    /// <param name="range">The model's input range; null keeps <see cref="AttackOptions.InputRange"/>'s default ([0, 1] images).</param>
    /// <param name="seed">Seed of the method's random draws; null uses TorchSharp's global generator.</param>
    public static AutoAttack AutoAttack(double eps = 8, AutoAttackVersion version = AutoAttackVersion.Standard, InputRange? range = null, long? seed = null)
        => new(With(new AutoAttackOptions { Version = version }, eps, range, seed));

    /// <summary>Any registered method by name ("fgsm", "step-ll", "iter-ll", ...).</summary>
    public static Attack ByName(string name, double eps = 16, InputRange? range = null, long? seed = null)
        => AttackRegistry.Create(name, With(new AttackOptions(), eps, range, seed));
}
