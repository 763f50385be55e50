namespace Microsoft.ML.Adversarial;

/// <summary>What the registry knows about a method. The flags are read from the attack class itself, never restated.</summary>
/// <param name="Name">Registry name, used by the CLI and the ML.NET transformers.</param>
/// <param name="PaperName">The name the paper uses.</param>
/// <param name="Summary">One line: the formula in words.</param>
/// <param name="RequiresLabels">Cannot run without the true labels (<see cref="Attack.RequiresLabels"/>).</param>
/// <param name="UsesTrueLabel">Reads the true labels when given, and so can leak them (section 4.2; <see cref="Attack.UsesLabels"/>).</param>
/// <param name="IsOneStep">One gradient per batch, reusable for every epsilon (a <see cref="OneStepAttack"/>).</param>
/// <param name="IsRandomBaseline">Noise, not an attack: a baseline for comparison (<see cref="Attack.IsRandomBaseline"/>).</param>
/// <param name="OptionsType">The options class the method takes (<see cref="AttackOptions"/> or a subclass).</param>
public sealed record AttackInfo(string Name, string PaperName, string Summary, bool RequiresLabels, bool UsesTrueLabel, bool IsOneStep,
    bool IsRandomBaseline, Type OptionsType)
{
    /// <summary>The method differentiates the model (<see cref="Attack.NeedsGradients"/>); false ones also run on black-box models.</summary>
    public bool NeedsGradients { get; init; } = true;
}

/// <summary>
/// Every method by name: <c>AttackRegistry.Create("step-ll", new AttackOptions { Epsilon = 8 })</c> or
/// <c>AttackRegistry.Create(AttackMethod.StepLL, ...)</c>. The names are those of <see cref="AttackMethod"/>'s members (the
/// CLI's <c>--method</c> values); nothing else spells them.
/// </summary>
public static class AttackRegistry
{
    private static readonly Dictionary<string, (AttackInfo Info, Func<AttackOptions, Attack> Create)> Methods = new(StringComparer.OrdinalIgnoreCase);

    static AttackRegistry()
    {
        Add<AttackOptions>(AttackMethod.Fgsm, "FGSM", "X + eps sign(grad J(X, y_true))", o => new Fgsm(o));
        Add<AttackOptions>(AttackMethod.FgsmPred, "FGSM-pred", "X + eps sign(grad J(X, y_pred))", o => new FgsmPredicted(o));
        Add<AttackOptions>(AttackMethod.FastEntropy, "fast entropy", "X + eps sign(grad H(p(.|X)))", o => new FastEntropy(o));
        Add<AttackOptions>(AttackMethod.FastGradL2, "fast grad. L2", "X + eps g / ||g||_2, g = grad J(X, y_true)", o => new FastGradL2(o));
        Add<AttackOptions>(AttackMethod.FastGradLInf, "fast grad. L-inf", "X + eps g / ||g||_inf, g = grad J(X, y_true)", o => new FastGradLInf(o));
        Add<AttackOptions>(AttackMethod.StepLL, "step l.l.", "X - eps sign(grad J(X, y_LL)), y_LL = argmin p(y|X)", o => new StepLeastLikely(o));
        Add<AttackOptions>(AttackMethod.StepRnd, "step rnd.", "X - eps sign(grad J(X, y_rnd)), y_rnd uniform among y != y_true", o => new StepRandom(o));
        Add<IterativeAttackOptions>(AttackMethod.IterBasic, "iter. basic", "repeat X <- Clip(X + alpha sign(grad J(X, y_true)))", o => new BasicIterative(o));
        Add<IterativeAttackOptions>(AttackMethod.IterLL, "iter. l.l.", "repeat X <- Clip(X - alpha sign(grad J(X, y_LL)))", o => new IterativeLeastLikely(o));
        Add<AttackOptions>(AttackMethod.RandomSign, "sign of random normal", "X + eps sign(N(0, 1))", o => new RandomSign(o));
        Add<AttackOptions>(AttackMethod.RandomTruncNormal, "random truncated normal", "X + eps T, T ~ N(0, 0.5) truncated to [-1, 1]", o => new TruncatedNormalNoise(o));
        Add<PgdOptions>(AttackMethod.PgdLInf, "PGD L-inf (Madry et al.)", "random start, repeat X <- Proj_inf(X + step sign(grad J)), restarts",
            o => new Pgd(WithNorm(o, PgdNorm.LInf)));
        Add<PgdOptions>(AttackMethod.PgdL2, "PGD L2 (Madry et al.)", "random start, repeat X <- Proj_2(X + step g/||g||_2), restarts",
            o => new Pgd(WithNorm(o, PgdNorm.L2)));
        Add<ApgdOptions>(AttackMethod.ApgdCe, "APGD-CE (Croce & Hein)", "Auto-PGD on cross-entropy: step 2 eps halved at checkpoints, momentum 0.75",
            o => new Apgd(WithNorm(WithLoss(o, ApgdLoss.CrossEntropy), PgdNorm.LInf)));
        Add<ApgdOptions>(AttackMethod.ApgdDlr, "APGD-DLR (Croce & Hein)", "Auto-PGD on the DLR loss -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3)",
            o => new Apgd(WithNorm(WithLoss(o, ApgdLoss.Dlr), PgdNorm.LInf)));
        Add<ApgdOptions>(AttackMethod.ApgdT, "APGD-T (Croce & Hein)", "Auto-PGD on the targeted DLR loss, one run per top class of the clean image",
            o => new Apgd(WithNorm(WithLoss(o, ApgdLoss.TargetedDlr), PgdNorm.LInf)));
        Add<ApgdOptions>(AttackMethod.ApgdCeL2, "APGD-CE L2 (Croce & Hein)", "Auto-PGD on cross-entropy in the L2 ball: steps 2 eps g/||g||_2 halved at checkpoints, momentum 0.75",
            o => new Apgd(WithNorm(WithLoss(o, ApgdLoss.CrossEntropy), PgdNorm.L2)));
        Add<ApgdOptions>(AttackMethod.ApgdTL2, "APGD-T L2 (Croce & Hein)", "Auto-PGD on the targeted DLR loss in the L2 ball, one run per top class of the clean image",
            o => new Apgd(WithNorm(WithLoss(o, ApgdLoss.TargetedDlr), PgdNorm.L2)));
        Add<FabOptions>(AttackMethod.FabT, "FAB-T (Croce & Hein)", "targeted minimal L-inf boundary search: project onto the linearised boundary to each top class, overshoot 1.05, back-step 0.9; broken only within eps",
            o => new Fab(o));
        Add<SquareOptions>(AttackMethod.Square, "Square (Andriushchenko et al.)", "score-based random search: +-eps squares kept when the margin falls, query budget",
            o => new Square(o));
        Add<AutoAttackOptions>(AttackMethod.AutoAttack, "AutoAttack (standard)", "APGD-CE, APGD-T, FAB-T, Square in turn on the examples still correct; worst case per example",
            o => new AutoAttack(WithVersion(o, AutoAttackVersion.Standard)));
        Add<AutoAttackOptions>(AttackMethod.AutoAttackQuick, "AutoAttack (quick)", "AutoAttack with about a tenth of the standard budgets",
            o => new AutoAttack(WithVersion(o, AutoAttackVersion.Quick)));
    }

    private static void Add<TOptions>(AttackMethod method, string paperName, string summary, Func<TOptions, Attack> create) where TOptions : AttackOptions, new()
    {
        // The flags come from an instance with default options, so the registry cannot disagree with the classes.
        string name = method.Name;
        var probe = create(new TOptions());
        var info = new AttackInfo(name, paperName, summary, probe.RequiresLabels, probe.UsesLabels, probe is OneStepAttack, probe.IsRandomBaseline, typeof(TOptions))
        {
            NeedsGradients = probe.NeedsGradients,
        };
        Methods[name] = (info, o => create(o.As<TOptions>()));
    }

    /// <summary>All methods, in the order the paper introduces them.</summary>
    public static IReadOnlyList<AttackInfo> All => Methods.Values.Select(m => m.Info).ToList();

    /// <summary>Registry names of all methods ("fgsm", "step-ll", ...), in the order the paper introduces them.</summary>
    public static IReadOnlyList<string> Names => Methods.Keys.ToList();

    /// <summary>True when <paramref name="name"/> is a registered method.</summary>
    /// <param name="name">A registry name such as "fgsm".</param>
    public static bool Contains(string name) => Methods.ContainsKey(name);

    /// <summary>What the registry knows about a method: paper name, summary, label use, options type.</summary>
    /// <param name="name">A registry name; an unknown one throws an error that lists the known names.</param>
    public static AttackInfo Describe(string name) => Lookup(name).Info;

    /// <summary>A new attack of the named method; <paramref name="options"/> is copied, never shared.</summary>
    public static Attack Create(string name, AttackOptions? options = null) => Lookup(name).Create((options ?? new AttackOptions()).Clone());

    /// <summary>Methods that run on a model that only returns scores: score-based search, noise, and AutoAttack (its Square part).</summary>
    public static IReadOnlyList<string> BlackBoxNames =>
        All.Where(i => !i.NeedsGradients || i.OptionsType == typeof(AutoAttackOptions)).Select(i => i.Name).ToList();

    /// <summary>
    /// A new attack of the named method for a model without gradients (<see cref="ScoreFunctionModel"/>): AutoAttack
    /// runs only its score-based part; a gradient method is refused here, before any work, naming the ones that run.
    /// </summary>
    public static Attack CreateForBlackBox(string name, AttackOptions? options, string modelName)
    {
        var info = Describe(name);
        if (!info.NeedsGradients) return Create(name, options);
        var ensemble = options as AutoAttackOptions ?? OptionsFor(name, options) as AutoAttackOptions;
        if (ensemble is not null)
        {
            ensemble = (AutoAttackOptions)ensemble.Clone();
            ensemble.GradientFree = true;
            return Create(name, ensemble);
        }
        throw new ArgumentException($"Model '{modelName}' is a black box (it returns scores, no gradients), and method '{name}' needs gradients. " +
            $"Methods that run on it: {string.Join(", ", BlackBoxNames)}; or measure transfer to it from a model you have gradients for (EvaluateTransfer, advml transfer).", nameof(name));
    }

    /// <summary>Convenience: a method with a given epsilon (pixel units) and defaults otherwise.</summary>
    public static Attack Create(string name, double epsilon) => Create(name, new AttackOptions { Epsilon = epsilon });

    /// <summary>A new attack of <paramref name="method"/>; <paramref name="options"/> is copied, never shared.</summary>
    public static Attack Create(AttackMethod method, AttackOptions? options = null) => Create(Checked(method), options);

    /// <summary>What the registry knows about <paramref name="method"/>.</summary>
    public static AttackInfo Describe(AttackMethod method) => Describe(Checked(method));

    private static string Checked(AttackMethod method) => (method ?? throw new ArgumentNullException(nameof(method))).Name;

    /// <summary>
    /// Options of the type the named method takes (<see cref="AttackInfo.OptionsType"/>), holding the shared settings of
    /// <paramref name="shared"/>: set the method-specific ones on the result, then pass it to <see cref="Create(string, AttackOptions)"/>.
    /// </summary>
    public static AttackOptions OptionsFor(string name, AttackOptions? shared = null)
    {
        var type = Lookup(name).Info.OptionsType;
        var options = (AttackOptions)Activator.CreateInstance(type)!;
        (shared ?? new AttackOptions()).CopySharedTo(options);
        return options;
    }

    private static (AttackInfo Info, Func<AttackOptions, Attack> Create) Lookup(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (Methods.TryGetValue(name, out var m)) return m;
        throw new ArgumentException($"Unknown attack method '{name}'. Known methods: {string.Join(", ", Methods.Keys)}.", nameof(name));
    }

    private static PgdOptions WithNorm(PgdOptions o, PgdNorm norm)
    {
        o.Norm = norm;
        return o;
    }

    private static ApgdOptions WithNorm(ApgdOptions o, PgdNorm norm)
    {
        o.Norm = norm;
        return o;
    }

    private static ApgdOptions WithLoss(ApgdOptions o, ApgdLoss loss)
    {
        o.Loss = loss;
        return o;
    }

    private static AutoAttackOptions WithVersion(AutoAttackOptions o, AutoAttackVersion version)
    {
        o.Version = version;
        return o;
    }
}

/// <summary>
/// A registered attack method, typed: <c>AttackMethod.StepLL</c>, <c>AttackMethod.IterBasic</c>, ... Each member's
/// <see cref="Name"/> is the one name of the method everywhere (the CLI's <c>--method</c>, the registry, the docs). A
/// string converts implicitly (<c>"step-ll"</c>, any case; unknown names throw, listing the known ones), and an
/// <see cref="AttackMethod"/> converts implicitly to its name, so options that hold a name
/// (<c>Method = AttackMethod.StepLL</c>) take either.
/// </summary>
public sealed class AttackMethod : IEquatable<AttackMethod>
{
    private AttackMethod(string name) => Name = name;

    /// <summary>The registry name ("step-ll").</summary>
    public string Name { get; }

    /// <summary><c>fgsm</c>: X + eps sign(grad J(X, y_true)).</summary>
    public static readonly AttackMethod Fgsm = new("fgsm");
    /// <summary><c>fgsm-pred</c>: FGSM on the predicted label (no label leak).</summary>
    public static readonly AttackMethod FgsmPred = new("fgsm-pred");
    /// <summary><c>fast-entropy</c>: X + eps sign(grad H(p(.|X))).</summary>
    public static readonly AttackMethod FastEntropy = new("fast-entropy");
    /// <summary><c>fast-grad-l2</c>: X + eps g / ||g||_2.</summary>
    public static readonly AttackMethod FastGradL2 = new("fast-grad-l2");
    /// <summary><c>fast-grad-linf</c>: X + eps g / ||g||_inf.</summary>
    public static readonly AttackMethod FastGradLInf = new("fast-grad-linf");
    /// <summary><c>step-ll</c>: X - eps sign(grad J(X, y_LL)), the paper's step l.l.</summary>
    public static readonly AttackMethod StepLL = new("step-ll");
    /// <summary><c>step-rnd</c>: step l.l. towards a random wrong class.</summary>
    public static readonly AttackMethod StepRnd = new("step-rnd");
    /// <summary><c>iter-basic</c>: FGSM repeated with step alpha, clipped to the eps ball (the paper's iter. basic).</summary>
    public static readonly AttackMethod IterBasic = new("iter-basic");
    /// <summary><c>iter-ll</c>: step l.l. repeated (the paper's iter. l.l.).</summary>
    public static readonly AttackMethod IterLL = new("iter-ll");
    /// <summary><c>random-sign</c>: X + eps sign(N(0, 1)), a noise baseline.</summary>
    public static readonly AttackMethod RandomSign = new("random-sign");
    /// <summary><c>random-truncnormal</c>: truncated normal noise, a baseline.</summary>
    public static readonly AttackMethod RandomTruncNormal = new("random-truncnormal");
    /// <summary><c>pgd-linf</c>: PGD in the L-inf ball (Madry et al.).</summary>
    public static readonly AttackMethod PgdLInf = new("pgd-linf");
    /// <summary><c>pgd-l2</c>: PGD in the L2 ball (Madry et al.).</summary>
    public static readonly AttackMethod PgdL2 = new("pgd-l2");
    /// <summary><c>apgd-ce</c>: Auto-PGD on cross-entropy (Croce and Hein).</summary>
    public static readonly AttackMethod ApgdCe = new("apgd-ce");
    /// <summary><c>apgd-dlr</c>: Auto-PGD on the DLR loss.</summary>
    public static readonly AttackMethod ApgdDlr = new("apgd-dlr");
    /// <summary><c>apgd-t</c>: Auto-PGD on the targeted DLR loss.</summary>
    public static readonly AttackMethod ApgdT = new("apgd-t");
    /// <summary><c>square</c>: the score-based Square attack.</summary>
    public static readonly AttackMethod Square = new("square");
    /// <summary>APGD-CE in the L2 ball.</summary>
    public static readonly AttackMethod ApgdCeL2 = new("apgd-ce-l2");
    /// <summary>APGD-T in the L2 ball.</summary>
    public static readonly AttackMethod ApgdTL2 = new("apgd-t-l2");
    /// <summary>FAB-T: targeted minimal L-inf boundary search (AutoAttack's third component).</summary>
    public static readonly AttackMethod FabT = new("fab-t");
    /// <summary><c>autoattack</c>: APGD-CE, APGD-T, FAB-T and Square in turn (standard budgets).</summary>
    public static readonly AttackMethod AutoAttack = new("autoattack");
    /// <summary><c>autoattack-quick</c>: AutoAttack with about a tenth of the budgets.</summary>
    public static readonly AttackMethod AutoAttackQuick = new("autoattack-quick");

    /// <summary>The registered method named <paramref name="name"/> (any case); unknown names throw, listing the known ones.</summary>
    public static AttackMethod Parse(string name) => new(AttackRegistry.Describe(name).Name);

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
