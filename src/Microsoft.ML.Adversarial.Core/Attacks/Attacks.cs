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

    public static Fgsm Fgsm(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    public static FgsmPredicted FgsmPredicted(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    public static FastEntropy FastEntropy(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    public static FastGradL2 FastGradL2(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    public static FastGradLInf FastGradLInf(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    public static StepLeastLikely StepLL(double eps = 16, InputRange? range = null) => new(With(new AttackOptions(), eps, range, null));
    public static StepRandom StepRnd(double eps = 16, InputRange? range = null, long? seed = null) => new(With(new AttackOptions(), eps, range, seed));
    public static StepTarget StepTarget(int targetClass, double eps = 16, InputRange? range = null) => new(targetClass, With(new AttackOptions(), eps, range, null));

    public static BasicIterative IterBasic(double eps = 16, InputRange? range = null, double alpha = 1, int? iterations = null)
        => new(With(new IterativeAttackOptions { Alpha = alpha, Iterations = iterations }, eps, range, null));

    public static IterativeLeastLikely IterLL(double eps = 16, InputRange? range = null, double alpha = 1, int? iterations = null)
        => new(With(new IterativeAttackOptions { Alpha = alpha, Iterations = iterations }, eps, range, null));

    public static RandomSign RandomSign(double eps = 16, InputRange? range = null, long? seed = null) => new(With(new AttackOptions(), eps, range, seed));
    public static TruncatedNormalNoise TruncatedNormal(double eps = 16, InputRange? range = null, long? seed = null) => new(With(new AttackOptions(), eps, range, seed));

    public static Pgd Pgd(double eps = 16, PgdNorm norm = PgdNorm.LInf, int steps = 10, int restarts = 1, InputRange? range = null, long? seed = null)
        => new(With(new PgdOptions { Norm = norm, Steps = steps, Restarts = restarts }, eps, range, seed));

    public static Apgd Apgd(double eps = 8, ApgdLoss loss = ApgdLoss.CrossEntropy, int iterations = 100, InputRange? range = null, long? seed = null)
        => new(With(new ApgdOptions { Loss = loss, Iterations = iterations }, eps, range, seed));

    public static Square Square(double eps = 8, int queries = 5000, InputRange? range = null, long? seed = null)
        => new(With(new SquareOptions { Queries = queries }, eps, range, seed));

    public static AutoAttack AutoAttack(double eps = 8, AutoAttackVersion version = AutoAttackVersion.Standard, InputRange? range = null, long? seed = null)
        => new(With(new AutoAttackOptions { Version = version }, eps, range, seed));

    /// <summary>Any registered method by name ("fgsm", "step-ll", "iter-ll", ...).</summary>
    public static Attack ByName(string name, double eps = 16, InputRange? range = null, long? seed = null)
        => AttackRegistry.Create(name, With(new AttackOptions(), eps, range, seed));
}
