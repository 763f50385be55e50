namespace Microsoft.ML.Adversarial.Training;

/// <summary>The optimiser that updates the weights.</summary>
public enum OptimizerKind
{
    /// <summary>
    /// PyTorch's RMSProp (<c>p -= lr g / (sqrt(ms) + eps)</c>, mean square starting at 0). For the paper's Inception v3
    /// recipe use <see cref="TensorFlowRmsProp"/>, the variant TensorFlow ran.
    /// </summary>
    RmsProp,
    /// <summary>SGD with momentum.</summary>
    Sgd,
    /// <summary>Adam (beta1 0.9, beta2 0.999, eps 1e-8): the default, with learning rate 1e-3.</summary>
    Adam,
    /// <summary>
    /// TensorFlow's RMSProp, as the paper trained Inception v3: <c>ms = decay ms + (1 - decay) g^2</c> with ms starting at 1,
    /// <c>mom = momentum mom + lr g / sqrt(ms + eps)</c> (epsilon inside the square root), <c>p -= mom</c>.
    /// </summary>
    TensorFlowRmsProp,
}

/// <summary>
/// Options of adversarial training (the paper's Algorithm 1). The minibatch, k, lambda and epsilon distribution are the
/// paper's; the optimiser defaults to Adam with learning rate 1e-3, which trains small networks on small data well.
/// <see cref="PaperInceptionV3"/> gives the paper's full ImageNet recipe (TensorFlow's RMSProp, learning-rate decay,
/// label smoothing, gradient clipping).
/// </summary>
public class AdversarialTrainingOptions
{
    /// <summary>Default optimiser: Adam.</summary>
    public const OptimizerKind DefaultOptimizer = OptimizerKind.Adam;
    /// <summary>Default learning rate: 1e-3 (for <see cref="DefaultOptimizer"/>).</summary>
    public const double DefaultLearningRate = 1e-3;

    /// <summary>Minibatch size m.</summary>
    public int BatchSize { get; set; } = 32;

    /// <summary>Number k of each minibatch's examples replaced by adversarial ones. 0 is clean training.</summary>
    public int AdversarialPerBatch { get; set; } = 16;

    /// <summary>Weight lambda of the adversarial examples' loss.</summary>
    public double AdversarialLossWeight { get; set; } = 0.3;

    /// <summary>Method that makes the adversarial examples (any registered name); step l.l. by default.</summary>
    public string Method { get; set; } = "step-ll";

    /// <summary>When set, each minibatch uses one of these methods, chosen at random (overrides <see cref="Method"/>).</summary>
    public IReadOnlyList<string>? MethodMix { get; set; }

    /// <summary>Per-example epsilon in pixel units; the paper's truncated normal by default.</summary>
    public EpsilonDistribution Epsilon { get; set; } = EpsilonDistribution.Paper;

    /// <summary>Steps trained on clean examples only before adversarial ones are mixed in (the paper: 10k at ImageNet scale).</summary>
    public int DelaySteps { get; set; }

    /// <summary>Passes over the training data.</summary>
    public int Epochs { get; set; } = 1;

    /// <summary>Stop after this many steps in all (null: <see cref="Epochs"/> decides).</summary>
    public int? MaxSteps { get; set; }

    /// <summary>The optimiser; Adam by default (<see cref="PaperInceptionV3"/> uses <see cref="OptimizerKind.TensorFlowRmsProp"/>).</summary>
    public OptimizerKind Optimizer { get; set; } = DefaultOptimizer;
    /// <summary>Initial learning rate; 1e-3 by default (the paper: 0.045 with RMSProp).</summary>
    public double LearningRate { get; set; } = DefaultLearningRate;
    /// <summary>RMSProp's decay of the squared-gradient average (both RMSProp variants).</summary>
    public double RmsPropDecay { get; set; } = 0.9;
    /// <summary>RMSProp's epsilon (both variants); Inception's 1.0 damps steps where gradients are small.</summary>
    public double RmsPropEpsilon { get; set; } = 1.0;
    /// <summary>Momentum for SGD and both RMSProp variants.</summary>
    public double Momentum { get; set; }
    /// <summary>L2 weight decay added to every parameter's gradient (<c>g + wd p</c>).</summary>
    public double WeightDecay { get; set; }
    /// <summary>Label smoothing of the cross-entropy (Inception v3 uses 0.1).</summary>
    public double LabelSmoothing { get; set; }
    /// <summary>Multiply the learning rate by <see cref="LearningRateDecay"/> every this many epochs (0: constant).</summary>
    public int LearningRateDecayEpochs { get; set; }
    /// <summary>Factor of the step decay of the learning rate (used when <see cref="LearningRateDecayEpochs"/> &gt; 0).</summary>
    public double LearningRateDecay { get; set; } = 0.94;
    /// <summary>
    /// Rescale the gradients so that their global L2 norm (over every parameter) is at most this (TensorFlow's
    /// <c>clip_by_global_norm</c>: <c>g * c / max(norm, c)</c>); 0: no clipping. Inception v3 used 2.0.
    /// </summary>
    public double GradientClipNorm { get; set; }

    /// <summary>How inputs relate to pixels (epsilon conversion and clipping).</summary>
    public InputRange InputRange { get; set; } = InputRange.UnitInterval;

    /// <summary>Seed for initialisation, data order, epsilons and the attack's randomness.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Report progress every this many steps.</summary>
    public int ProgressEvery { get; set; } = 50;

    /// <summary>
    /// Synchronous data-parallel training over MPI, one replica per rank (launch with <c>mpirun -np N</c>); null (the
    /// default): one process. <see cref="BatchSize"/> and <see cref="AdversarialPerBatch"/> are then the global m and k.
    /// </summary>
    public DistributedTrainingOptions? Distributed { get; set; }
    /// <summary>
    /// How a source that is not in memory (<see cref="Data.IImageSource"/>: IDX files, image folders) is read ahead of the
    /// model: background workers and the most batches held ahead. It never changes the batches, only when they are read;
    /// an <see cref="Data.ImageSet"/> is read on the training thread. Default: 2 workers, depth 4.
    /// </summary>
    public Data.PrefetchOptions Prefetch { get; set; } = new();

    /// <summary>
    /// How the network runs (<see cref="ComputeOptions"/>). The adversarial examples of each step are made on a replica
    /// synced with the current weights (BatchNorm folded; bfloat16 when <see cref="ComputeOptions.Precision"/> asks);
    /// the training pass takes channels-last input and, with bfloat16, runs on a bfloat16 replica whose gradients update
    /// the fp32 master weights. Default: fp32, channels-last, folded.
    /// </summary>
    public ComputeOptions Compute { get; set; } = ComputeOptions.Default;

    /// <summary>
    /// The paper's Inception v3 recipe as TensorFlow ran it (docs/training.md lists each setting with its source):
    /// TensorFlow's RMSProp (decay 0.9, momentum 0.9, epsilon 1.0 inside the square root, mean square starting at 1),
    /// learning rate 0.045 multiplied by 0.94 every 2 epochs, label smoothing 0.1, gradient clipping at global norm 2.0,
    /// weight decay 4e-5, and the paper's m = 32, k = 16, lambda = 0.3, step l.l. with epsilon ~ |N(0, 8)| on [0, 16].
    /// Change any field afterwards. It is tuned for ImageNet on 50 synchronous replicas; on small data the default (Adam
    /// 1e-3) trains faster.
    /// </summary>
    public static AdversarialTrainingOptions PaperInceptionV3()
    {
        var options = new AdversarialTrainingOptions();
        options.SetPaperInceptionV3Recipe();
        return options;
    }

    /// <summary>Sets every field <see cref="PaperInceptionV3"/> names (the ML.NET options reuse it).</summary>
    private protected void SetPaperInceptionV3Recipe()
    {
        BatchSize = 32;
        AdversarialPerBatch = 16;
        AdversarialLossWeight = 0.3;
        Method = "step-ll";
        MethodMix = null;
        Epsilon = EpsilonDistribution.Paper;
        Optimizer = OptimizerKind.TensorFlowRmsProp;
        LearningRate = 0.045;
        RmsPropDecay = 0.9;
        RmsPropEpsilon = 1.0;
        Momentum = 0.9;
        WeightDecay = 4e-5;
        LearningRateDecay = 0.94;
        LearningRateDecayEpochs = 2;
        LabelSmoothing = 0.1;
        GradientClipNorm = 2.0;
    }

    /// <summary>The learning rate of (0-based) <paramref name="epoch"/>: <c>LearningRate * LearningRateDecay^floor(epoch / LearningRateDecayEpochs)</c>.</summary>
    public double LearningRateAt(long epoch)
        => LearningRateDecayEpochs > 0 ? LearningRate * Math.Pow(LearningRateDecay, epoch / LearningRateDecayEpochs) : LearningRate;

    /// <summary>Checks every option; the message names the option, the value and what is allowed.</summary>
    public virtual void Validate()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "The minibatch size m must be at least 1.");
        if (Distributed is { BucketMegabytes: var mb } && (!(mb >= 0) || double.IsInfinity(mb)))
            throw new ArgumentOutOfRangeException(nameof(DistributedTrainingOptions.BucketMegabytes), mb, "The gradient bucket size is a number of megabytes, 0 or more (0: one bucket after the backward pass).");
        if (AdversarialPerBatch < 0 || AdversarialPerBatch > BatchSize)
            throw new ArgumentOutOfRangeException(nameof(AdversarialPerBatch), AdversarialPerBatch, $"k (adversarial examples per minibatch) must lie in [0, m = {BatchSize}]; got {AdversarialPerBatch}.");
        if (!(AdversarialLossWeight >= 0) || !double.IsFinite(AdversarialLossWeight))
            throw new ArgumentOutOfRangeException(nameof(AdversarialLossWeight), AdversarialLossWeight, "lambda (adversarial loss weight) must be finite and >= 0.");
        if (AdversarialPerBatch > 0 && AdversarialLossWeight == 0 && AdversarialPerBatch == BatchSize)
            throw new ArgumentOutOfRangeException(nameof(AdversarialLossWeight), "With k = m and lambda = 0 every example has weight 0: nothing would be learned.");
        foreach (string m in MethodMix ?? new[] { Method })
            if (!AttackRegistry.Contains(m))
                throw new ArgumentException($"Unknown adversarial training method '{m}'. Known: {string.Join(", ", AttackRegistry.Names)}.", nameof(Method));
        if (MethodMix is { Count: 0 }) throw new ArgumentException("MethodMix must name at least one method, or be null.", nameof(MethodMix));
        ArgumentNullException.ThrowIfNull(Epsilon, nameof(Epsilon));
        Epsilon.Validate();
        if (DelaySteps < 0) throw new ArgumentOutOfRangeException(nameof(DelaySteps), DelaySteps, "The delay must be >= 0 steps.");
        if (Epochs < 1) throw new ArgumentOutOfRangeException(nameof(Epochs), Epochs, "Train for at least 1 epoch.");
        if (MaxSteps is < 1) throw new ArgumentOutOfRangeException(nameof(MaxSteps), MaxSteps, "MaxSteps must be at least 1 or null.");
        if (!(LearningRate > 0) || !double.IsFinite(LearningRate)) throw new ArgumentOutOfRangeException(nameof(LearningRate), LearningRate, "The learning rate must be positive.");
        if (!(LabelSmoothing >= 0 && LabelSmoothing < 1)) throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), LabelSmoothing, "Label smoothing must lie in [0, 1).");
        if (!(WeightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(WeightDecay), WeightDecay, "Weight decay must be >= 0.");
        if (!(Momentum >= 0 && Momentum < 1)) throw new ArgumentOutOfRangeException(nameof(Momentum), Momentum, "Momentum must lie in [0, 1).");
        if (LearningRateDecayEpochs < 0) throw new ArgumentOutOfRangeException(nameof(LearningRateDecayEpochs), LearningRateDecayEpochs, "Must be >= 0.");
        if (!(LearningRateDecay > 0 && LearningRateDecay <= 1)) throw new ArgumentOutOfRangeException(nameof(LearningRateDecay), LearningRateDecay, "The learning-rate decay factor must lie in (0, 1].");
        if (!(GradientClipNorm >= 0) || !double.IsFinite(GradientClipNorm))
            throw new ArgumentOutOfRangeException(nameof(GradientClipNorm), GradientClipNorm, "GradientClipNorm must be finite and >= 0 (0: no clipping).");
        if (!Enum.IsDefined(Optimizer)) throw new ArgumentOutOfRangeException(nameof(Optimizer), Optimizer, $"Unknown optimiser; use one of {string.Join(", ", Enum.GetNames<OptimizerKind>())}.");
        if (Optimizer is OptimizerKind.RmsProp or OptimizerKind.TensorFlowRmsProp)
        {
            if (!(RmsPropDecay >= 0 && RmsPropDecay < 1)) throw new ArgumentOutOfRangeException(nameof(RmsPropDecay), RmsPropDecay, "RMSProp's decay must lie in [0, 1).");
            if (!(RmsPropEpsilon >= 0) || !double.IsFinite(RmsPropEpsilon)) throw new ArgumentOutOfRangeException(nameof(RmsPropEpsilon), RmsPropEpsilon, "RMSProp's epsilon must be finite and >= 0.");
        }
        if (ProgressEvery < 1) throw new ArgumentOutOfRangeException(nameof(ProgressEvery), ProgressEvery, "Must be >= 1.");
        (Prefetch ?? throw new ArgumentNullException(nameof(Prefetch), "AdversarialTrainingOptions.Prefetch must be set (new PrefetchOptions() for the defaults).")).Validate();
    }
}

/// <summary>Progress of a training run, reported every <see cref="AdversarialTrainingOptions.ProgressEvery"/> steps.</summary>
/// <param name="Step">Steps done.</param>
/// <param name="Epoch">Current epoch (from 1).</param>
/// <param name="TotalSteps">Steps the run will take.</param>
/// <param name="Loss">Mean of the weighted loss since the last report.</param>
/// <param name="CleanAccuracy">Accuracy on the clean part of the minibatches since the last report.</param>
/// <param name="AdversarialAccuracy">Accuracy on the adversarial part (NaN while none are used).</param>
/// <param name="ExamplesPerSecond">Throughput since the last report.</param>
/// <param name="LearningRate">Current learning rate.</param>
public sealed record TrainingProgress(long Step, int Epoch, long TotalSteps, double Loss, double CleanAccuracy, double AdversarialAccuracy,
    double ExamplesPerSecond, double LearningRate)
{
    /// <summary>One progress line: step, epoch, loss, accuracies, throughput and learning rate.</summary>
    public override string ToString()
        => $"step {Step}/{TotalSteps} (epoch {Epoch}): loss {Loss:F4}, clean acc {CleanAccuracy:P1}, " +
           $"adv acc {(double.IsNaN(AdversarialAccuracy) ? "-" : AdversarialAccuracy.ToString("P1"))}, {ExamplesPerSecond:F0} ex/s, lr {LearningRate:G3}";
}
