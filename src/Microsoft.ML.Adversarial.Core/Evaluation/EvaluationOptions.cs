namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>What both evaluators take: methods, epsilons (pixel units), batching, top-k, the input range, seed, progress.</summary>
public abstract class EvaluationOptions
{
    private protected EvaluationOptions(IReadOnlyList<string> methods, IReadOnlyList<double> epsilons)
    {
        Methods = methods;
        Epsilons = epsilons;
    }

    /// <summary>Registry names of the methods to run.</summary>
    public IReadOnlyList<string> Methods { get; set; }
    /// <summary>Perturbation sizes in pixel units of [0, 255].</summary>
    public IReadOnlyList<double> Epsilons { get; set; }
    /// <summary>Images attacked and scored at once.</summary>
    public int BatchSize { get; set; } = 256;
    /// <summary>The k of top-k accuracy (the paper reports top-5).</summary>
    public int TopK { get; set; } = 5;
    /// <summary>The pixel range the models take (epsilon conversion and clipping).</summary>
    public InputRange InputRange { get; set; } = InputRange.UnitInterval;
    /// <summary>Seed of the random methods (step rnd., random sign, PGD starts).</summary>
    public long Seed { get; set; } = 1;
    /// <summary>
    /// Settings of single methods by registry name, e.g. <c>MethodOptions["square"] = new SquareOptions { Queries = 1000 }</c>
    /// or <c>MethodOptions["autoattack"] = new AutoAttackOptions { SquareQueries = 1000 }</c>; the evaluation's
    /// <see cref="InputRange"/>, <see cref="Seed"/> and <see cref="Compute"/> replace theirs. Methods without an entry run with their defaults.
    /// The method's name fixes its variant (AutoAttack's version, APGD's loss and norm), whatever the entry says: for
    /// the quick ensemble name "autoattack-quick", for L2 APGD "apgd-ce-l2".
    /// </summary>
    public Dictionary<string, AttackOptions> MethodOptions { get; private set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>A copy a caller's options can be adapted in without being changed (the method settings copied too).</summary>
    internal T CopyOf<T>() where T : EvaluationOptions
    {
        var copy = (T)MemberwiseClone();
        copy.MethodOptions = MethodOptions.ToDictionary(kv => kv.Key, kv => kv.Value.Clone(), StringComparer.OrdinalIgnoreCase);
        return copy;
    }

    /// <summary>
    /// How the models run (precision, channels-last, BatchNorm folding) in scoring and in every attack;
    /// <see cref="ComputeOptions.Default"/> unless set.
    /// </summary>
    public ComputeOptions Compute { get; set; } = ComputeOptions.Default;

    /// <summary>
    /// EOT for every gradient method of the evaluation (<see cref="AttackOptions.EotSamples"/>): each input gradient the
    /// mean of this many passes, for models that draw random numbers. 1 (the default) leaves each method's own setting.
    /// </summary>
    public int EotSamples { get; set; } = 1;

    /// <summary>
    /// BPDA for every gradient method of the evaluation (<see cref="AttackOptions.BpdaLayers"/>): layers whose backward
    /// pass is taken as the identity. Empty (the default) leaves each method's own setting.
    /// </summary>
    public IReadOnlyList<string> BpdaLayers { get; set; } = Array.Empty<string>();

    /// <summary>
    /// The options <paramref name="method"/> runs with: its <see cref="MethodOptions"/> entry or its defaults, with this
    /// evaluation's range, seed and compute options, and its EOT and BPDA settings when the method takes gradients.
    /// </summary>
    internal AttackOptions OptionsFor(string method)
    {
        var options = MethodOptions.TryGetValue(method, out var given) ? given.Clone() : AttackRegistry.OptionsFor(method);
        options.InputRange = InputRange;
        options.Seed = Seed;
        options.Compute = Compute;
        if (AttackRegistry.Describe(method).NeedsGradients)
        {
            if (EotSamples != 1) options.EotSamples = EotSamples;
            if (BpdaLayers.Count > 0) options.BpdaLayers = BpdaLayers;
        }
        return options;
    }

    /// <summary>Receives progress reports (images done out of the total); null for none.</summary>
    public IProgress<EvaluationProgress>? Progress { get; set; }
    /// <summary>Stops the evaluation between batches when cancelled.</summary>
    public CancellationToken CancellationToken { get; set; }

    /// <summary>
    /// How a source that is not in memory (<see cref="Data.IImageSource"/>) is read ahead of the model (background
    /// workers, most batches held ahead); an <see cref="Data.ImageSet"/> is read on the calling thread. Default: 2 workers, depth 4.
    /// </summary>
    public Data.PrefetchOptions Prefetch { get; set; } = new();

    internal void Validate()
    {
        if (Methods is null || Methods.Count == 0) throw new ArgumentException("Methods is empty; name at least one method (e.g. \"fgsm\").", nameof(Methods));
        foreach (var m in Methods) AttackRegistry.Describe(m);
        if (Methods.Distinct(StringComparer.OrdinalIgnoreCase).Count() != Methods.Count)
            throw new ArgumentException($"Methods lists a method twice ({string.Join(", ", Methods)}); name each once.", nameof(Methods));
        if (Epsilons is null || Epsilons.Count == 0) throw new ArgumentException("Epsilons is empty; give at least one epsilon in pixel units (e.g. 16).", nameof(Epsilons));
        PixelEpsilon.CheckAll(Epsilons, nameof(Epsilons));
        if (Epsilons.Distinct().Count() != Epsilons.Count)
            throw new ArgumentException($"Epsilons lists a value twice ({string.Join(", ", Epsilons)}); give each once.", nameof(Epsilons));
        foreach (var (name, options) in MethodOptions)
        {
            if (!Methods.Contains(name, StringComparer.OrdinalIgnoreCase))
                throw new ArgumentException($"MethodOptions has settings for '{name}', which is not among Methods ({string.Join(", ", Methods)}); add it to Methods or remove the entry.", nameof(MethodOptions));
            var type = AttackRegistry.Describe(name).OptionsType;
            if (options is null || !type.IsInstanceOfType(options))
                throw new ArgumentException($"MethodOptions['{name}'] is {options?.GetType().Name ?? "null"}; method '{name}' takes {type.Name}.", nameof(MethodOptions));
        }
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "BatchSize must be at least 1.");
        if (EotSamples < 1) throw new ArgumentOutOfRangeException(nameof(EotSamples), EotSamples, "EotSamples (gradient passes averaged per step) must be at least 1.");
        if (BpdaLayers is null || BpdaLayers.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException("BpdaLayers must be a list of layer names (none empty); use an empty list for none.", nameof(BpdaLayers));
        if (TopK < 1) throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be at least 1.");
        ArgumentNullException.ThrowIfNull(InputRange, nameof(InputRange));
        ArgumentNullException.ThrowIfNull(Prefetch, nameof(Prefetch));
        Prefetch.Validate();
    }
}
