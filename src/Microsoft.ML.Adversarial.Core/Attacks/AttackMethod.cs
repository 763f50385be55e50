using System.Runtime.CompilerServices;
// The members below are named after the methods; these name the classes they build.
using AutoAttackEnsemble = Microsoft.ML.Adversarial.AutoAttack;
using FastEntropyAttack = Microsoft.ML.Adversarial.FastEntropy;
using FastGradL2Attack = Microsoft.ML.Adversarial.FastGradL2;
using FastGradLInfAttack = Microsoft.ML.Adversarial.FastGradLInf;
using FgsmAttack = Microsoft.ML.Adversarial.Fgsm;
using RandomSignNoise = Microsoft.ML.Adversarial.RandomSign;
using SquareAttack = Microsoft.ML.Adversarial.Square;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// A registered attack method, typed: <c>AttackMethod.StepLL</c>, <c>AttackMethod.IterBasic</c>, ... Each member's
/// <see cref="Name"/> is the one name of the method everywhere (the CLI's <c>--method</c>, the registry, the docs). A
/// string converts implicitly (<c>"step-ll"</c>, any case; unknown names throw, listing the known ones), and an
/// <see cref="AttackMethod"/> converts implicitly to its name, so options that hold a name
/// (<c>Method = AttackMethod.StepLL</c>) take either.
/// </summary>
public sealed class AttackMethod : IEquatable<AttackMethod>
{
    internal AttackMethod(string name) => Name = name;

    /// <summary>The registry name ("step-ll").</summary>
    public string Name { get; }

    // The registry: one line per built-in method, its name written here only, in the order the paper introduces them.
    /// <summary><c>fgsm</c>: X + eps sign(grad J(X, y_true)) (Goodfellow et al.).</summary>
    public static readonly AttackMethod Fgsm = AttackRegistry.Register<AttackOptions>("fgsm", "FGSM", "X + eps sign(grad J(X, y_true))", o => new FgsmAttack(o));
    /// <summary><c>fgsm-pred</c>: FGSM on the predicted label (no label leak).</summary>
    public static readonly AttackMethod FgsmPred = AttackRegistry.Register<AttackOptions>("fgsm-pred", "FGSM-pred", "X + eps sign(grad J(X, y_pred))", o => new FgsmPredicted(o));
    /// <summary><c>fast-entropy</c>: X + eps sign(grad H(p(.|X))).</summary>
    public static readonly AttackMethod FastEntropy = AttackRegistry.Register<AttackOptions>("fast-entropy", "fast entropy", "X + eps sign(grad H(p(.|X)))", o => new FastEntropyAttack(o));
    /// <summary><c>fast-grad-l2</c>: X + eps g / ||g||_2.</summary>
    public static readonly AttackMethod FastGradL2 = AttackRegistry.Register<AttackOptions>("fast-grad-l2", "fast grad. L2", "X + eps g / ||g||_2, g = grad J(X, y_true)", o => new FastGradL2Attack(o));
    /// <summary><c>fast-grad-linf</c>: X + eps g / ||g||_inf.</summary>
    public static readonly AttackMethod FastGradLInf = AttackRegistry.Register<AttackOptions>("fast-grad-linf", "fast grad. L-inf", "X + eps g / ||g||_inf, g = grad J(X, y_true)", o => new FastGradLInfAttack(o));
    /// <summary><c>step-ll</c>: X - eps sign(grad J(X, y_LL)), the paper's step l.l.</summary>
    public static readonly AttackMethod StepLL = AttackRegistry.Register<AttackOptions>("step-ll", "step l.l.", "X - eps sign(grad J(X, y_LL)), y_LL = argmin p(y|X)", o => new StepLeastLikely(o));
    /// <summary><c>step-rnd</c>: step l.l. towards a random wrong class.</summary>
    public static readonly AttackMethod StepRnd = AttackRegistry.Register<AttackOptions>("step-rnd", "step rnd.", "X - eps sign(grad J(X, y_rnd)), y_rnd uniform among y != y_true", o => new StepRandom(o));
    /// <summary><c>iter-basic</c>: FGSM repeated with step alpha, clipped to the eps ball (the paper's iter. basic).</summary>
    public static readonly AttackMethod IterBasic = AttackRegistry.Register<IterativeAttackOptions>("iter-basic", "iter. basic", "repeat X <- Clip(X + alpha sign(grad J(X, y_true)))", o => new BasicIterative(o));
    /// <summary><c>iter-ll</c>: step l.l. repeated (the paper's iter. l.l.).</summary>
    public static readonly AttackMethod IterLL = AttackRegistry.Register<IterativeAttackOptions>("iter-ll", "iter. l.l.", "repeat X <- Clip(X - alpha sign(grad J(X, y_LL)))", o => new IterativeLeastLikely(o));
    /// <summary><c>random-sign</c>: X + eps sign(N(0, 1)), a noise baseline.</summary>
    public static readonly AttackMethod RandomSign = AttackRegistry.Register<AttackOptions>("random-sign", "sign of random normal", "X + eps sign(N(0, 1))", o => new RandomSignNoise(o));
    /// <summary><c>random-truncnormal</c>: truncated normal noise, a baseline.</summary>
    public static readonly AttackMethod RandomTruncNormal = AttackRegistry.Register<AttackOptions>("random-truncnormal", "random truncated normal", "X + eps T, T ~ N(0, 0.5) truncated to [-1, 1]", o => new TruncatedNormalNoise(o));
    /// <summary><c>pgd-linf</c>: PGD in the L-inf ball (Madry et al.).</summary>
    public static readonly AttackMethod PgdLInf = AttackRegistry.Register<PgdOptions>("pgd-linf", "PGD L-inf (Madry et al.)", "random start, repeat X <- Proj_inf(X + step sign(grad J)), restarts", o => new Pgd(With(o, PgdNorm.LInf)));
    /// <summary><c>pgd-l2</c>: PGD in the L2 ball (Madry et al.).</summary>
    public static readonly AttackMethod PgdL2 = AttackRegistry.Register<PgdOptions>("pgd-l2", "PGD L2 (Madry et al.)", "random start, repeat X <- Proj_2(X + step g/||g||_2), restarts", o => new Pgd(With(o, PgdNorm.L2)));
    /// <summary><c>apgd-ce</c>: Auto-PGD on cross-entropy (Croce and Hein).</summary>
    public static readonly AttackMethod ApgdCe = AttackRegistry.Register<ApgdOptions>("apgd-ce", "APGD-CE (Croce & Hein)", "Auto-PGD on cross-entropy: step 2 eps halved at checkpoints, momentum 0.75", o => new Apgd(With(o, ApgdLoss.CrossEntropy, PgdNorm.LInf)));
    /// <summary><c>apgd-dlr</c>: Auto-PGD on the DLR loss.</summary>
    public static readonly AttackMethod ApgdDlr = AttackRegistry.Register<ApgdOptions>("apgd-dlr", "APGD-DLR (Croce & Hein)", "Auto-PGD on the DLR loss -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3)", o => new Apgd(With(o, ApgdLoss.Dlr, PgdNorm.LInf)));
    /// <summary><c>apgd-t</c>: Auto-PGD on the targeted DLR loss.</summary>
    public static readonly AttackMethod ApgdT = AttackRegistry.Register<ApgdOptions>("apgd-t", "APGD-T (Croce & Hein)", "Auto-PGD on the targeted DLR loss, one run per top class of the clean image", o => new Apgd(With(o, ApgdLoss.TargetedDlr, PgdNorm.LInf)));
    /// <summary><c>apgd-ce-l2</c>: APGD-CE in the L2 ball.</summary>
    public static readonly AttackMethod ApgdCeL2 = AttackRegistry.Register<ApgdOptions>("apgd-ce-l2", "APGD-CE L2 (Croce & Hein)", "Auto-PGD on cross-entropy in the L2 ball: steps 2 eps g/||g||_2 halved at checkpoints, momentum 0.75", o => new Apgd(With(o, ApgdLoss.CrossEntropy, PgdNorm.L2)));
    /// <summary><c>apgd-t-l2</c>: APGD-T in the L2 ball.</summary>
    public static readonly AttackMethod ApgdTL2 = AttackRegistry.Register<ApgdOptions>("apgd-t-l2", "APGD-T L2 (Croce & Hein)", "Auto-PGD on the targeted DLR loss in the L2 ball, one run per top class of the clean image", o => new Apgd(With(o, ApgdLoss.TargetedDlr, PgdNorm.L2)));
    /// <summary><c>fab-t</c>: targeted minimal L-inf boundary search (AutoAttack's third component).</summary>
    public static readonly AttackMethod FabT = AttackRegistry.Register<FabOptions>("fab-t", "FAB-T (Croce & Hein)", "targeted minimal L-inf boundary search: project onto the linearised boundary to each top class, overshoot 1.05, back-step 0.9; broken only within eps", o => new Fab(With(o, targeted: true, PgdNorm.LInf)));
    /// <summary><c>fab</c>: untargeted FAB (the closest linearised boundary at each iteration), AutoAttack 'plus' runs it with 5 restarts.</summary>
    public static readonly AttackMethod FabUntargeted = AttackRegistry.Register<FabOptions>("fab", "FAB (Croce & Hein)", "untargeted minimal L-inf boundary search: project onto the closest linearised boundary z_k = z_y, overshoot 1.05, back-step 0.9; broken only within eps", o => new Fab(With(o, targeted: false, PgdNorm.LInf)));
    /// <summary><c>fab-t-l2</c>: FAB-T with distances in L2 (AutoAttack's L2 version).</summary>
    public static readonly AttackMethod FabTL2 = AttackRegistry.Register<FabOptions>("fab-t-l2", "FAB-T L2 (Croce & Hein)", "targeted minimal L2 boundary search (exact L2 projection onto the linearised boundary within the pixel range); broken only within eps", o => new Fab(With(o, targeted: true, PgdNorm.L2)));
    /// <summary><c>fab-l2</c>: untargeted FAB with distances in L2.</summary>
    public static readonly AttackMethod FabUntargetedL2 = AttackRegistry.Register<FabOptions>("fab-l2", "FAB L2 (Croce & Hein)", "untargeted minimal L2 boundary search: the closest linearised boundary in L2 at each iteration; broken only within eps", o => new Fab(With(o, targeted: false, PgdNorm.L2)));
    /// <summary><c>square</c>: the score-based Square attack.</summary>
    public static readonly AttackMethod Square = AttackRegistry.Register<SquareOptions>("square", "Square (Andriushchenko et al.)", "score-based random search: +-eps squares kept when the margin falls, query budget", o => new SquareAttack(WithNorm(o, PgdNorm.LInf)));
    /// <summary><c>square-l2</c>: the score-based Square attack in the L2 ball.</summary>
    public static readonly AttackMethod SquareL2 = AttackRegistry.Register<SquareOptions>("square-l2", "Square L2 (Andriushchenko et al.)", "score-based random search on the L2 sphere: move the mass of one window into another plus a random-signed mound, kept when the margin falls", o => new SquareAttack(WithNorm(o, PgdNorm.L2)));
    /// <summary><c>autoattack</c>: APGD-CE, APGD-T, FAB-T and Square in turn (standard budgets).</summary>
    public static readonly AttackMethod AutoAttack = AttackRegistry.Register<AutoAttackOptions>("autoattack", "AutoAttack (standard)", "APGD-CE, APGD-T, FAB-T, Square in turn on the examples still correct; worst case per example", o => new AutoAttackEnsemble(With(o, AutoAttackVersion.Standard)));
    /// <summary><c>autoattack-quick</c>: AutoAttack with about a tenth of the budgets.</summary>
    public static readonly AttackMethod AutoAttackQuick = AttackRegistry.Register<AutoAttackOptions>("autoattack-quick", "AutoAttack (quick)", "AutoAttack with about a tenth of the standard budgets", o => new AutoAttackEnsemble(With(o, AutoAttackVersion.Quick)));
    /// <summary><c>autoattack-l2</c>: the standard ensemble in L2 (APGD-CE, APGD-T, FAB-T, Square, each in the L2 ball).</summary>
    public static readonly AttackMethod AutoAttackL2 = AttackRegistry.Register<AutoAttackOptions>("autoattack-l2", "AutoAttack L2 (standard)", "APGD-CE, APGD-T, FAB-T, Square in the L2 ball, in turn on the examples still correct", o => new AutoAttackEnsemble(WithL2(With(o, AutoAttackVersion.Standard))));
    /// <summary><c>autoattack-plus</c>: AutoAttack's 'plus' version (APGD-CE and APGD-DLR with 5 restarts, untargeted FAB with 5, Square, APGD-T, FAB-T).</summary>
    public static readonly AttackMethod AutoAttackPlus = AttackRegistry.Register<AutoAttackOptions>("autoattack-plus", "AutoAttack (plus)", "APGD-CE, APGD-DLR (5 restarts each), FAB (5 restarts), Square, APGD-T, FAB-T in turn on the examples still correct", o => new AutoAttackEnsemble(With(o, AutoAttackVersion.Plus)));
    /// <summary><c>autoattack-rand</c>: AutoAttack's 'rand' version for randomised models (APGD-CE and APGD-DLR with EOT over 20 passes).</summary>
    public static readonly AttackMethod AutoAttackRand = AttackRegistry.Register<AutoAttackOptions>("autoattack-rand", "AutoAttack (rand)", "APGD-CE and APGD-DLR, each gradient averaged over 20 passes (EOT), for randomised models", o => new AutoAttackEnsemble(With(o, AutoAttackVersion.Rand)));

    /// <summary>Runs the registry lines above (once); the registry calls it before any lookup.</summary>
    internal static void EnsureBuiltIns() => RuntimeHelpers.RunClassConstructor(typeof(AttackMethod).TypeHandle);

    // What a method's name fixes, set on the options the registry copied for it.
    private static PgdOptions With(PgdOptions o, PgdNorm norm)
    {
        o.Norm = norm;
        return o;
    }

    private static ApgdOptions With(ApgdOptions o, ApgdLoss loss, PgdNorm norm)
    {
        o.Loss = loss;
        o.Norm = norm;
        return o;
    }

    private static AutoAttackOptions WithL2(AutoAttackOptions o)
    {
        o.Norm = PgdNorm.L2;
        return o;
    }

    private static SquareOptions WithNorm(SquareOptions o, PgdNorm norm)
    {
        o.Norm = norm;
        return o;
    }

    private static FabOptions With(FabOptions o, bool targeted, PgdNorm norm)
    {
        o.Targeted = targeted;
        o.Norm = norm;
        return o;
    }

    private static AutoAttackOptions With(AutoAttackOptions o, AutoAttackVersion version)
    {
        o.Version = version;
        o.Norm = PgdNorm.LInf;
        return o;
    }

    /// <summary>The registered method named <paramref name="name"/> (any case); unknown names throw, listing the known ones.</summary>
    public static AttackMethod Parse(string name) => AttackRegistry.MethodNamed(name);

    /// <summary>A method name as an <see cref="AttackMethod"/> (checked against the registry).</summary>
    public static implicit operator AttackMethod(string name) => Parse(name);

    /// <summary>The method's registry name.</summary>
    public static implicit operator string(AttackMethod method) => method.Name;

    /// <inheritdoc/>
    public bool Equals(AttackMethod? other) => other is not null && string.Equals(Name, other.Name, StringComparison.OrdinalIgnoreCase);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => obj is AttackMethod m && Equals(m);

    /// <inheritdoc/>
    public override int GetHashCode() => StringComparer.OrdinalIgnoreCase.GetHashCode(Name);

    /// <summary>The registry name.</summary>
    public override string ToString() => Name;
}
