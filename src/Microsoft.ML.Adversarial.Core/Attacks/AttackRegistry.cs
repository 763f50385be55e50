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

    /// <summary>Runs on a model that returns scores only: needs no gradients, or has a score-based form (<see cref="AttackOptions.ForScoresOnly"/>).</summary>
    public bool RunsOnScores { get; init; }

    /// <summary>Components run in turn on the examples still unbroken (<see cref="IEnsembleAttack"/>): evaluators report the per-example worst case beside it.</summary>
    public bool IsEnsemble { get; init; }
}

/// <summary>
/// Every method by name: <c>AttackRegistry.Create("step-ll", new AttackOptions { Epsilon = 8 })</c> or
/// <c>AttackRegistry.Create(AttackMethod.StepLL, ...)</c>. A method is added by one <see cref="Register{TOptions}"/> line
/// (the built-in ones are <see cref="AttackMethod"/>'s members); its name is written there and nowhere else.
/// </summary>
public static class AttackRegistry
{
    private sealed record Entry(AttackMethod Method, Lazy<AttackInfo> Info, Func<AttackOptions, Attack> Create);

    // Insertion order is the order of All (the paper's); nothing is ever removed.
    private static readonly Dictionary<string, Entry> Registered = new(StringComparer.OrdinalIgnoreCase);
    private static readonly object Gate = new();

    /// <summary>
    /// Adds a method: its registry name (the CLI's <c>--method</c> value), the name the literature uses, one line of
    /// formula, and how to build it from its options type. The attack's flags (labels, one step, gradients) are read
    /// from an instance built with default options, so they cannot disagree with the class. Returns the typed name.
    /// </summary>
    /// <param name="name">Registry name: lower case, words joined by '-', unique.</param>
    /// <param name="paperName">The name the paper (or the method's authors) use.</param>
    /// <param name="summary">One line: the formula in words.</param>
    /// <param name="create">Builds the attack from options of its type (already a copy; set what the name fixes).</param>
    public static AttackMethod Register<TOptions>(string name, string paperName, string summary, Func<TOptions, Attack> create) where TOptions : AttackOptions, new()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(create);
        if (name != name.ToLowerInvariant() || name.Any(char.IsWhiteSpace))
            throw new ArgumentException($"Method name '{name}' must be lower case without spaces (it is a command-line value), e.g. 'my-attack'.", nameof(name));
        var method = new AttackMethod(name);
        // Built lazily: a class whose constructor names its AttackMethod member cannot be built while that member is being set.
        var info = new Lazy<AttackInfo>(() =>
        {
            var probe = create(new TOptions());
            return new AttackInfo(name, paperName, summary, probe.RequiresLabels, probe.UsesLabels, probe is OneStepAttack, probe.IsRandomBaseline, typeof(TOptions))
            {
                NeedsGradients = probe.NeedsGradients,
                RunsOnScores = !probe.NeedsGradients || new TOptions().ForScoresOnly() is not null,
                IsEnsemble = probe is IEnsembleAttack,
            };
        });
        lock (Gate)
        {
            if (Registered.ContainsKey(name))
                throw new ArgumentException($"An attack method named '{name}' is already registered; choose another name.", nameof(name));
            Registered[name] = new Entry(method, info, o => create(o.As<TOptions>()));
        }
        return method;
    }

    private static IEnumerable<Entry> Entries
    {
        get
        {
            AttackMethod.EnsureBuiltIns();
            lock (Gate) return Registered.Values.ToList();
        }
    }

    /// <summary>All methods, in the order they were registered (the built-in ones in the order the paper introduces them).</summary>
    public static IReadOnlyList<AttackInfo> All => Entries.Select(e => e.Info.Value).ToList();

    /// <summary>Registry names of all methods ("fgsm", "step-ll", ...), in the order of <see cref="All"/>.</summary>
    public static IReadOnlyList<string> Names => Entries.Select(e => e.Method.Name).ToList();

    /// <summary>True when <paramref name="name"/> is a registered method.</summary>
    /// <param name="name">A registry name such as "fgsm".</param>
    public static bool Contains(string name) => name is not null && Entries.Any(e => string.Equals(e.Method.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>What the registry knows about a method: paper name, summary, label use, options type.</summary>
    /// <param name="name">A registry name; an unknown one throws an error that lists the known names.</param>
    public static AttackInfo Describe(string name) => Lookup(name).Info.Value;

    /// <summary>The typed name of a registered method (any case); unknown names throw, listing the known ones.</summary>
    internal static AttackMethod MethodNamed(string name) => Lookup(name).Method;

    /// <summary>A new attack of the named method; <paramref name="options"/> is copied, never shared.</summary>
    public static Attack Create(string name, AttackOptions? options = null) => Lookup(name).Create((options ?? new AttackOptions()).Clone());

    /// <summary>Methods that run on a model that only returns scores: score-based search, noise, and ensembles with a score-based part.</summary>
    public static IReadOnlyList<string> BlackBoxNames => All.Where(i => i.RunsOnScores).Select(i => i.Name).ToList();

    /// <summary>
    /// A new attack of the named method for a model without gradients (<see cref="ScoreFunctionModel"/>): a method with a
    /// score-based form (<see cref="AttackOptions.ForScoresOnly"/>) runs that form; a gradient method is refused here,
    /// before any work, naming the ones that run.
    /// </summary>
    public static Attack CreateForBlackBox(string name, AttackOptions? options, string modelName)
    {
        var info = Describe(name);
        if (!info.NeedsGradients) return Create(name, options);
        if (OptionsFor(name, options).ForScoresOnly() is { } scoresOnly) return Create(name, scoresOnly);
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
    /// <paramref name="shared"/> (or <paramref name="shared"/> itself, copied, when it already is of that type): set the
    /// method-specific ones on the result, then pass it to <see cref="Create(string, AttackOptions)"/>.
    /// </summary>
    public static AttackOptions OptionsFor(string name, AttackOptions? shared = null)
    {
        var type = Describe(name).OptionsType;
        if (shared is not null && shared.GetType() == type) return shared.Clone();
        var options = (AttackOptions)Activator.CreateInstance(type)!;
        (shared ?? new AttackOptions()).CopySharedTo(options);
        return options;
    }

    private static Entry Lookup(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        var entries = Entries.ToList();
        return entries.FirstOrDefault(e => string.Equals(e.Method.Name, name, StringComparison.OrdinalIgnoreCase))
            ?? throw new ArgumentException($"Unknown attack method '{name}'. Known methods: {string.Join(", ", entries.Select(e => e.Method.Name))}.", nameof(name));
    }
}
