using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using static TorchSharp.torch;

[assembly: Microsoft.ML.LoadableClass(typeof(Microsoft.ML.Adversarial.MLNet.AdversarialAttackTransformer), null, typeof(Microsoft.ML.SignatureLoadModel),
    "Adversarial attack", Microsoft.ML.Adversarial.MLNet.AdversarialAttackTransformer.LoaderSignature)]

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// Writes adversarial versions of a pixel column, made against a source classifier by any registered method. Rows are
/// attacked in batches inside the cursor; re-reading the output gives the same pixels (the random stream restarts).
/// </summary>
public class AdversarialAttackTransformer : ITransformer
{
    private readonly AdversarialAttackEstimator.Options _options;

    internal AdversarialAttackTransformer(ImageClassifierTransformer source, AdversarialAttackEstimator.Options options, long seed)
    {
        Source = source;
        _options = options;
        Seed = seed;
        Info = AttackRegistry.Describe(options.Method);
    }

    /// <summary>
    /// The fitted steps before <see cref="Source"/> when the attack was made from a fitted chain (they make the pixel
    /// column from the raw rows, and run before the attack); null when it was made from the classifier itself.
    /// </summary>
    public ITransformer? Prefix { get; private set; }

    /// <summary>Prefix, then this attack without it; null without a prefix.</summary>
    private TransformerChain<ITransformer>? _withPrefix;

    internal AdversarialAttackTransformer WithPrefix(ITransformer? prefix)
    {
        if (prefix is null) return this;
        Prefix = prefix;
        _withPrefix = new TransformerChain<ITransformer>(prefix, AdversarialAttackEstimator.Make(Source, _options, Seed));
        return this;
    }

    /// <summary>The classifier the examples are made against.</summary>
    public ImageClassifierTransformer Source { get; }
    /// <summary>The method: registry name, paper name and label use.</summary>
    public AttackInfo Info { get; }
    /// <summary>Registry name of the method, e.g. "fgsm".</summary>
    public string Method => Info.Name;
    /// <summary>Epsilon in pixel units of [0, 255].</summary>
    public double Epsilon => _options.Epsilon;
    /// <summary>Seed of the method's random draws; each read of the output restarts from it.</summary>
    public long Seed { get; }
    /// <summary>The pixel column attacked.</summary>
    public string InputColumnName => _options.InputColumnName ?? OutputColumnName;
    /// <summary>The column the adversarial pixels are written to (the classifier's own pixel column unless set).</summary>
    public string OutputColumnName => _options.OutputColumnName ?? Source.PixelColumnName;
    /// <summary>Rows attacked at once.</summary>
    public int BatchSize => _options.BatchSize;
    /// <summary>Called with the row count after each attacked batch (progress of <c>Adversarial().Evaluate</c>); not saved.</summary>
    internal Action<int>? BatchAttacked { get; set; }
    /// <summary>True: <c>CreatePredictionEngine</c> works (one row at a time; <c>Transform</c> batches).</summary>
    public bool IsRowToRowMapper => Prefix?.IsRowToRowMapper ?? true;

    /// <summary>A new attack object with this transformer's settings.</summary>
    public Attack CreateAttack()
    {
        // The registry gives the options type the method takes; that type says what the step settings mean for it.
        var options = AttackRegistry.OptionsFor(Info.Name, new AttackOptions { Epsilon = _options.Epsilon, InputRange = Source.InputRange, Seed = Seed, Compute = _options.Compute ?? ComputeOptions.Default });
        options.ApplySteps(Info.Name, _options.Iterations, _options.Alpha);
        return AttackRegistry.Create(Info.Name, options);
    }

    /// <summary>
    /// The label column the attack reads on <paramref name="schema"/>: required ones must be there; methods that use labels
    /// when given (untargeted PGD) read it when present and fall back to the prediction otherwise; the rest read none.
    /// Labels reach the attack as the source model's classes, matched by name (<see cref="ClassOrder"/>).
    /// </summary>
    private (string? Column, ClassOrder? Order) LabelColumnFor(DataViewSchema schema)
    {
        if (!Info.UsesTrueLabel) return (null, null);
        string name = _options.LabelColumnName;
        if (!Info.RequiresLabels && schema.GetColumnOrNull(name) is null) return (null, null);
        var label = SchemaChecks.Find(schema, name, $"Label (method '{Method}' needs the true label)");
        if (label.Type is not KeyDataViewType key)
            throw new ArgumentOutOfRangeException(name, $"Label column '{name}' has type {label.Type}; '{Method}' needs a key label (MapValueToKey).");
        if (key.Count != (ulong)Source.ClassNames.Count)
            throw new ArgumentOutOfRangeException(name, $"Label column '{name}' has {key.Count} classes; the source model has {Source.ClassNames.Count}.");
        return (name, ClassOrder.For(schema, name, Source.ClassNames));
    }

    /// <inheritdoc/>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
        => _withPrefix?.GetOutputSchema(inputSchema) ?? BatchedDataView.BuildSchema(inputSchema, MapperFor(inputSchema).Outputs);

    /// <inheritdoc/>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return _withPrefix?.Transform(input) ?? new BatchedDataView(input, MapperFor(input.Schema));
    }

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
        => (_withPrefix as ITransformer)?.GetRowToRowMapper(inputSchema) ?? new BatchRowMapper(inputSchema, MapperFor(inputSchema));

    /// <summary>Checks <paramref name="schema"/> and makes the mapper that attacks its rows.</summary>
    private Mapper MapperFor(DataViewSchema schema)
    {
        SchemaChecks.PixelShape(schema, InputColumnName, Source.ImageShape);
        if (_options.EpsilonColumnName is { } e)
        {
            var col = SchemaChecks.Find(schema, e, "Epsilon");
            if (col.Type != NumberDataViewType.Single)
                throw new ArgumentOutOfRangeException(e, $"Epsilon column '{e}' has type {col.Type}; expected Single (pixel units).");
        }
        var (labelColumn, order) = LabelColumnFor(schema);
        return new Mapper(this, CreateAttack(), labelColumn, order) { BatchSize = _options.BatchSize };
    }

    internal const string LoaderSignature = "AdvAttackTransform";
    internal const int StateVersion = 1;

    private static VersionInfo GetVersionInfo() => new(
        modelSignature: "ADVATTCK", verWrittenCur: 0x00010001, verReadableCur: 0x00010001, verWeCanReadBack: 0x00010001,
        loaderSignature: LoaderSignature, loaderAssemblyName: typeof(AdversarialAttackTransformer).Assembly.FullName);

    private sealed record State(int StateVersion, string LibraryVersion, long Seed, AdversarialAttackEstimator.Options Options);

    /// <summary>Saved by <c>mlContext.Model.Save</c>: the settings and seed (State.json) and the source classifier as a sub-model.</summary>
    void ICanSaveModel.Save(ModelSaveContext ctx)
    {
        ctx.CheckAtModel();
        ctx.SetVersionInfo(GetVersionInfo());
        ModelPersistence.SaveJson(ctx, new State(StateVersion, ModelIO.LibraryVersion, Seed, _options));
        ctx.SaveModel(Source, "Source");
        if (Prefix is not null) ctx.SaveModel(Prefix, "Prefix");
    }

    /// <summary>Called by <c>mlContext.Model.Load</c>; gives back the same subclass (FGSM, step l.l.) that was saved.</summary>
    private static AdversarialAttackTransformer Create(IHostEnvironment env, ModelLoadContext ctx)
    {
        ctx.CheckAtModel(GetVersionInfo());
        var state = ModelPersistence.LoadJson<State>(ctx, s => s.StateVersion, StateVersion, s => s.LibraryVersion);
        ctx.LoadModel<ImageClassifierTransformer, SignatureLoadModel>(env, out var source, "Source");
        ctx.LoadModelOrNull<ITransformer, SignatureLoadModel>(env, out var prefix, "Prefix");
        return AdversarialAttackEstimator.Make(source, state.Options, state.Seed).WithPrefix(prefix);
    }

    private sealed class Mapper : BatchMapper
    {
        private readonly AdversarialAttackTransformer _t;
        private readonly Attack _attack;
        private readonly int _length;

        private readonly ClassOrder? _order;
        private readonly string _rangeFix;

        public Mapper(AdversarialAttackTransformer t, Attack attack, string? labelColumnName, ClassOrder? order)
        {
            _t = t;
            _attack = attack;
            _order = order;
            _rangeFix = SchemaChecks.RangeFix(t.Source.InputRange, t.InputColumnName);
            LabelColumnName = labelColumnName;
            var (c, h, w) = t.Source.ImageShape;
            _length = c * h * w;
            Outputs = new[] { new OutputColumn(t.OutputColumnName, new VectorDataViewType(NumberDataViewType.Single, c, h, w)) };
        }

        public override string PixelColumnName => _t.InputColumnName;
        public override string? LabelColumnName { get; }
        public override string? EpsilonColumnName => _t._options.EpsilonColumnName;
        public override IReadOnlyList<OutputColumn> Outputs { get; }

        public override void Reset() => _attack.ResetRandom();

        public override void Map(float[] pixels, long[]? labels, float[]? epsilons, int count, float[]?[] vectorOutputs, uint[]?[] keyOutputs)
        {
            using var scope = NewDisposeScope();
            var (c, h, w) = _t.Source.ImageShape;
            var device = _t.Source.Device;
            var x = tensor(pixels, new long[] { pixels.Length / _length, c, h, w })[..count].to(device);
            _t.Source.InputRange.Check(x, _rangeFix);
            Tensor? y = null;
            if (labels is not null)
            {
                var span = labels.AsSpan(0, count);
                if (span.IndexOf(-1L) >= 0)
                    throw new InvalidDataException($"A row of the batch has a missing label in column '{_t._options.LabelColumnName}', which '{_t.Method}' needs. Filter rows with missing labels first.");
                var modelLabels = new long[count];
                for (int i = 0; i < count; i++) modelLabels[i] = _order!.ToModel(span[i]);
                y = tensor(modelLabels).to(device);
            }
            Tensor? eps = epsilons is null ? null : tensor(epsilons)[..count].to(device);
            var adv = _attack.Generate(_t.Source.Model, x, y, eps).cpu();
            adv.data<float>().CopyTo(vectorOutputs[0].AsSpan(0, count * _length));
            _t.BatchAttacked?.Invoke(count);
        }
    }
}

/// <summary>FGSM as an ML.NET transform: <c>X + eps sign(grad J(X, y_true))</c>.</summary>
public sealed class FgsmTransformer : AdversarialAttackTransformer
{
    internal FgsmTransformer(ImageClassifierTransformer source, AdversarialAttackEstimator.Options options, long seed) : base(source, options, seed) { }
}

/// <summary>Step l.l. as an ML.NET transform: <c>X - eps sign(grad J(X, y_LL))</c>.</summary>
public sealed class StepLLTransformer : AdversarialAttackTransformer
{
    internal StepLLTransformer(ImageClassifierTransformer source, AdversarialAttackEstimator.Options options, long seed) : base(source, options, seed) { }
}

/// <summary>Makes an attack transformer; there is nothing to learn, so Fit only checks the schema.</summary>
public sealed class AdversarialAttackEstimator : IEstimator<AdversarialAttackTransformer>
{
    /// <summary>Options of an attack transform: which method, how strong, which columns.</summary>
    public sealed class Options
    {
        /// <summary>The method: an <see cref="AttackMethod"/> (<c>Method = AttackMethod.StepLL</c>) or its registry name ("step-ll").</summary>
        public string Method { get; set; } = AttackMethod.StepLL;
        /// <summary>Epsilon in pixel units of [0, 255] (used when <see cref="EpsilonColumnName"/> is null).</summary>
        public double Epsilon { get; set; } = 16;
        /// <summary>A Single column with each row's epsilon (pixel units); null uses <see cref="Epsilon"/>.</summary>
        public string? EpsilonColumnName { get; set; }
        /// <summary>
        /// Adversarial pixel column written; the input column's name replaces it (so a scorer downstream sees the attack).
        /// Null (the default): the source classifier's pixel column (<see cref="ImageClassifierTransformer.PixelColumnName"/>,
        /// "Pixels" unless it was trained on another), so the classifier scores the attacked pixels.
        /// </summary>
        public string? OutputColumnName { get; set; }
        /// <summary>Clean pixel column read; null means <see cref="OutputColumnName"/>.</summary>
        public string? InputColumnName { get; set; }
        /// <summary>Key label column, read by methods that need the true label (FGSM, iter. basic, step rnd., PGD).</summary>
        public string LabelColumnName { get; set; } = ColumnNames.Label;
        /// <summary>
        /// Step size (pixel units) of the iterative methods (alpha) and PGD; null: the method's default. Methods that set
        /// their own (one-step methods, APGD, FAB, Square, AutoAttack) refuse it (<see cref="AttackOptions.ApplySteps"/>).
        /// </summary>
        public double? Alpha { get; set; }
        /// <summary>
        /// Steps of the iterative methods, PGD (per restart), APGD and FAB; Square's query budget; AutoAttack's APGD and
        /// FAB iterations. Null: the method's default. One-step methods refuse it (<see cref="AttackOptions.ApplySteps"/>).
        /// </summary>
        public int? Iterations { get; set; }
        /// <summary>Seed of the method's randomness; null draws one from the MLContext.</summary>
        public long? Seed { get; set; }
        /// <summary>Rows attacked at once.</summary>
        public int BatchSize { get; set; } = 256;
        /// <summary>
        /// How the network runs: precision (fp32 by default; <see cref="ComputeOptions.BFloat16"/> opt-in), channels-last
        /// input and BatchNorm folding (<see cref="ComputeOptions"/>).
        /// </summary>
        public ComputeOptions Compute { get; set; } = ComputeOptions.Default;

        /// <summary>A copy with the column names that default to the classifier's filled in.</summary>
        internal Options ResolvedFor(ImageClassifierTransformer source)
        {
            var copy = (Options)MemberwiseClone();
            copy.OutputColumnName ??= source.PixelColumnName;
            return copy;
        }
    }

    private readonly IHostEnvironment _env;
    private readonly ImageClassifierTransformer _source;
    private readonly ITransformer? _prefix;
    private readonly AdversarialAttackEstimator.Options _options;

    internal AdversarialAttackEstimator(IHostEnvironment env, ITransformer source, AdversarialAttackEstimator.Options options)
    {
        _env = env;
        if (source is null) throw new ArgumentNullException(nameof(source), "An attack needs the classifier it attacks (the transformer a trainer's Fit returned, or a fitted chain holding it).");
        // A fitted chain: attack the pixel column that reaches its classifier, after the steps that make it.
        var found = ClassifierInChain.Find(source, nameof(source));
        _source = found.Classifier;
        _prefix = found.Prefix;
        _options = (options ?? throw new ArgumentNullException(nameof(options))).ResolvedFor(_source);
        // Unknown names, and step settings the method has no use for, fail here, before any data is read.
        AttackRegistry.OptionsFor(options.Method).ApplySteps(AttackRegistry.Describe(options.Method).Name, options.Iterations, options.Alpha);
        PixelEpsilon.Check(options.Epsilon, nameof(options.Epsilon));
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options.BatchSize), options.BatchSize, "BatchSize must be at least 1.");
    }

    /// <inheritdoc/>
    public AdversarialAttackTransformer Fit(IDataView input)
    {
        long seed = _options.Seed ?? _env.Register("AdversarialAttack").Rand.Next();
        var transformer = Make(_source, _options, seed).WithPrefix(_prefix);
        transformer.GetOutputSchema(input.Schema);
        return transformer;
    }

    internal static AdversarialAttackTransformer Make(ImageClassifierTransformer source, AdversarialAttackEstimator.Options options, long seed) =>
        AttackRegistry.Describe(options.Method).Name switch
        {
            "fgsm" => new FgsmTransformer(source, options, seed),
            "step-ll" => new StepLLTransformer(source, options, seed),
            _ => new AdversarialAttackTransformer(source, options, seed),
        };

    /// <inheritdoc/>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        // With a fitted prefix the pixel column is made by it; Fit checks the real schema it gives.
        if (_prefix is not null)
            return SchemaChecks.With(inputSchema, SchemaChecks.ShapeColumn(_options.OutputColumnName!, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false));
        string output = _options.OutputColumnName!;
        string input = _options.InputColumnName ?? output;
        var col = inputSchema.FirstOrDefault(c => c.Name == input);
        if (col.Name is null)
            throw new ArgumentOutOfRangeException(input, $"Pixel column '{input}' not found. The input has: {string.Join(", ", inputSchema.Select(c => c.Name))}.");
        if (col.Kind != SchemaShape.Column.VectorKind.Vector || col.ItemType != NumberDataViewType.Single)
            throw new ArgumentOutOfRangeException(input, $"Pixel column '{input}' is {col.Kind} of {col.ItemType}; expected a vector of Single of known size.");
        return SchemaChecks.With(inputSchema, SchemaChecks.ShapeColumn(output, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false));
    }
}
