namespace Microsoft.ML.Adversarial;

/// <summary>What the registry knows about a method.</summary>
/// <param name="Name">Registry name, used by the CLI and the ML.NET transformers.</param>
/// <param name="PaperName">The name the paper uses.</param>
/// <param name="Summary">One line: the formula in words.</param>
/// <param name="UsesTrueLabel">Needs the true label (and so can leak it, section 4.2).</param>
/// <param name="IsOneStep">One gradient per batch, reusable for every epsilon.</param>
/// <param name="IsRandomBaseline">Noise, not an attack: a baseline for comparison.</param>
public sealed record AttackInfo(string Name, string PaperName, string Summary, bool UsesTrueLabel, bool IsOneStep, bool IsRandomBaseline);

/// <summary>Every method by name: <c>AttackRegistry.Create("step-ll", new AttackOptions { Epsilon = 8 })</c>.</summary>
public static class AttackRegistry
{
    private static readonly Dictionary<string, (AttackInfo Info, Func<AttackOptions, Attack> Create)> Methods = new(StringComparer.OrdinalIgnoreCase);

    static AttackRegistry()
    {
        Add(new("fgsm", "FGSM", "X + eps sign(grad J(X, y_true))", true, true, false), o => new Fgsm(o));
        Add(new("fgsm-pred", "FGSM-pred", "X + eps sign(grad J(X, y_pred))", false, true, false), o => new FgsmPredicted(o));
        Add(new("fast-entropy", "fast entropy", "X + eps sign(grad H(p(.|X)))", false, true, false), o => new FastEntropy(o));
        Add(new("fast-grad-l2", "fast grad. L2", "X + eps g / ||g||_2, g = grad J(X, y_true)", true, true, false), o => new FastGradL2(o));
        Add(new("fast-grad-linf", "fast grad. L-inf", "X + eps g / ||g||_inf, g = grad J(X, y_true)", true, true, false), o => new FastGradLInf(o));
        Add(new("step-ll", "step l.l.", "X - eps sign(grad J(X, y_LL)), y_LL = argmin p(y|X)", false, true, false), o => new StepLeastLikely(o));
        Add(new("step-rnd", "step rnd.", "X - eps sign(grad J(X, y_rnd)), y_rnd uniform among y != y_true", true, true, false), o => new StepRandom(o));
        Add(new("iter-basic", "iter. basic", "repeat X <- Clip(X + alpha sign(grad J(X, y_true)))", true, false, false), o => new BasicIterative(As<IterativeAttackOptions>(o)));
        Add(new("iter-ll", "iter. l.l.", "repeat X <- Clip(X - alpha sign(grad J(X, y_LL)))", false, false, false), o => new IterativeLeastLikely(As<IterativeAttackOptions>(o)));
        Add(new("random-sign", "sign of random normal", "X + eps sign(N(0, 1))", false, true, true), o => new RandomSign(o));
        Add(new("random-truncnormal", "random truncated normal", "X + eps T, T ~ N(0, 0.5) truncated to [-1, 1]", false, true, true), o => new TruncatedNormalNoise(o));
        Add(new("pgd-linf", "PGD L-inf (Madry et al.)", "random start, repeat X <- Proj_inf(X + step sign(grad J)), restarts", true, false, false),
            o => new Pgd(WithNorm(As<PgdOptions>(o), PgdNorm.LInf)));
        Add(new("pgd-l2", "PGD L2 (Madry et al.)", "random start, repeat X <- Proj_2(X + step g/||g||_2), restarts", true, false, false),
            o => new Pgd(WithNorm(As<PgdOptions>(o), PgdNorm.L2)));
    }

    private static void Add(AttackInfo info, Func<AttackOptions, Attack> create) => Methods[info.Name] = (info, create);

    /// <summary>All methods, in the order the paper introduces them.</summary>
    public static IReadOnlyList<AttackInfo> All => Methods.Values.Select(m => m.Info).ToList();

    public static IReadOnlyList<string> Names => Methods.Keys.ToList();

    public static bool Contains(string name) => Methods.ContainsKey(name);

    public static AttackInfo Describe(string name) => Lookup(name).Info;

    /// <summary>A new attack of the named method; <paramref name="options"/> is copied, never shared.</summary>
    public static Attack Create(string name, AttackOptions? options = null) => Lookup(name).Create((options ?? new AttackOptions()).Clone());

    /// <summary>Convenience: a method with a given epsilon (pixel units) and defaults otherwise.</summary>
    public static Attack Create(string name, double epsilon) => Create(name, new AttackOptions { Epsilon = epsilon });

    private static (AttackInfo Info, Func<AttackOptions, Attack> Create) Lookup(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (Methods.TryGetValue(name, out var m)) return m;
        throw new ArgumentException($"Unknown attack method '{name}'. Known methods: {string.Join(", ", Methods.Keys)}.", nameof(name));
    }

    /// <summary>Options of the derived type an attack needs, keeping the shared settings the caller gave.</summary>
    internal static T As<T>(AttackOptions o) where T : AttackOptions, new()
    {
        if (o is T t) return t;
        return new T
        {
            Epsilon = o.Epsilon,
            InputRange = o.InputRange,
            GradientsInTrainingMode = o.GradientsInTrainingMode,
            Seed = o.Seed,
            ValidateInputs = o.ValidateInputs,
        };
    }

    private static PgdOptions WithNorm(PgdOptions o, PgdNorm norm)
    {
        o.Norm = norm;
        return o;
    }
}
