namespace Microsoft.ML.Adversarial.Training;

/// <summary>The optimiser that updates the weights.</summary>
public enum OptimizerKind
{
    /// <summary>RMSProp, as the paper trains Inception v3 (decay 0.9, epsilon 1.0, learning rate 0.045).</summary>
    RmsProp,
    /// <summary>SGD with momentum.</summary>
    Sgd,
    /// <summary>Adam (Kingma and Ba, 2015).</summary>
    Adam,
}

/// <summary>Options of adversarial training (the paper's Algorithm 1); defaults are the paper's.</summary>
public class AdversarialTrainingOptions
{
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

    /// <summary>The optimiser.</summary>
    public OptimizerKind Optimizer { get; set; } = OptimizerKind.RmsProp;
    /// <summary>The optimiser's (initial) learning rate.</summary>
    public double LearningRate { get; set; } = 0.045;
    /// <summary>RMSProp's decay of the squared-gradient average.</summary>
    public double RmsPropDecay { get; set; } = 0.9;
    /// <summary>RMSProp's epsilon; Inception's 1.0 damps steps where gradients are small.</summary>
    public double RmsPropEpsilon { get; set; } = 1.0;
    /// <summary>Momentum for SGD and RMSProp.</summary>
    public double Momentum { get; set; }
    /// <summary>L2 weight decay (0: none).</summary>
    public double WeightDecay { get; set; }
    /// <summary>Label smoothing of the cross-entropy (Inception v3 uses 0.1).</summary>
    public double LabelSmoothing { get; set; }
    /// <summary>Multiply the learning rate by <see cref="LearningRateDecay"/> every this many epochs (0: constant).</summary>
    public int LearningRateDecayEpochs { get; set; }
    /// <summary>The factor <see cref="LearningRateDecayEpochs"/> applies to the learning rate.</summary>
    public double LearningRateDecay { get; set; } = 0.94;

    /// <summary>How inputs relate to pixels (epsilon conversion and clipping).</summary>
    public InputRange InputRange { get; set; } = InputRange.UnitInterval;

    /// <summary>Seed for initialisation, data order, epsilons and the attack's randomness.</summary>
    public int Seed { get; set; } = 1;

    /// <summary>Report progress every this many steps.</summary>
    public int ProgressEvery { get; set; } = 50;

    /// <summary>Checks every option; the message names the option, the value and what is allowed.</summary>
    public virtual void Validate()
    {
        if (BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, "The minibatch size m must be at least 1.");
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
        if (ProgressEvery < 1) throw new ArgumentOutOfRangeException(nameof(ProgressEvery), ProgressEvery, "Must be >= 1.");
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
