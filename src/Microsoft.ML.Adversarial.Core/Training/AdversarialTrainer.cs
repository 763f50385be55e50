using Microsoft.ML.Adversarial.Models;
using System.Diagnostics;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.IO;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial.Training;

/// <summary>Where and how often a training run saves checkpoints, and whether it resumes from one.</summary>
public sealed class CheckpointOptions
{
    /// <summary>Folder of the run's checkpoint; null: no checkpoints.</summary>
    public string? Directory { get; set; }
    /// <summary>Save every this many steps (and at the end).</summary>
    public int Every { get; set; } = 500;
    /// <summary>Continue from the checkpoint in <see cref="Directory"/> when there is one.</summary>
    public bool Resume { get; set; }
}

/// <summary>What a finished (or cancelled) run did.</summary>
public sealed record TrainingResult(long Steps, long ResumedFromStep, TimeSpan Elapsed, double FinalLoss, IReadOnlyList<TrainingProgress> History)
{
    /// <summary>
    /// Distributed training: how this rank averaged the gradients (buckets, overlap with the backward pass, time per
    /// step; <see cref="DistributedTrainingOptions.BucketMegabytes"/>); null in one process.
    /// </summary>
    public string? GradientAveraging { get; init; }
}

/// <summary>A network made and trained by <see cref="AdversarialTrainer.TrainNew"/>, with what a model file needs to rebuild it.</summary>
public sealed record TrainedModel(Module<Tensor, Tensor> Model, ModelDescription Description, TrainingResult Result);

/// <summary>
/// Adversarial training (the paper's Algorithm 1) of any TorchSharp classifier: in each minibatch of m examples the
/// first k (the data is shuffled) are replaced by adversarial examples made from the current network, and the loss is
/// <c>(sum_clean L + lambda sum_adv L) / ((m - k) + lambda k)</c>. Clean and adversarial examples go through one forward
/// pass together, so BatchNorm sees mixed batches as the paper recommends. Every random draw is a function of
/// (seed, step), so a run resumed from a checkpoint continues exactly as if never stopped.
/// </summary>
public sealed partial class AdversarialTrainer
{
    private readonly AdversarialTrainingOptions _options;
    private readonly CheckpointOptions _checkpoints;
    private readonly Action<string>? _log;
    private readonly int _seed;

    /// <param name="options">Training options (validated here).</param>
    /// <param name="checkpoints">Where to save checkpoints and whether to resume.</param>
    /// <param name="log">Receives one line per progress report.</param>
    /// <param name="seed">Overrides <see cref="AdversarialTrainingOptions.Seed"/> (the ML.NET estimator passes MLContext's).</param>
    public AdversarialTrainer(AdversarialTrainingOptions options, CheckpointOptions? checkpoints = null, Action<string>? log = null, int? seed = null)
    {
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _seed = seed ?? options.Seed;
        _options.Validate();
        _checkpoints = checkpoints ?? new CheckpointOptions();
        if (_checkpoints.Directory is not null && _checkpoints.Every < 1)
            throw new ArgumentOutOfRangeException(nameof(CheckpointOptions.Every), _checkpoints.Every, "Checkpoint interval must be at least 1 step.");
        _log = log;
    }

    /// <summary>Steps per epoch for <paramref name="rows"/> examples (the last, smaller minibatch included).</summary>
    public long StepsPerEpoch(int rows) => (rows + _options.BatchSize - 1) / _options.BatchSize;

    /// <summary>
    /// Builds a new network from <paramref name="spec"/> for <paramref name="data"/>'s image shape and classes (initialised
    /// from the trainer's seed), moves it to <paramref name="device"/> and trains it: the one way the library, the ML.NET
    /// estimator and the CLI create and train a model.
    /// </summary>
    /// <returns>The trained network (evaluation mode), the description a model file stores, and the run's summary.</returns>
    public TrainedModel TrainNew(ModelSpec spec, IImageSource data, Device? device = null, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(data);
        var (c, h, w) = data.ImageShape;
        var description = new ModelDescription(spec, data.ClassNames.Count, c, h, w, data.ClassNames.ToArray()) { InputRange = _options.InputRange };
        description.Validate(); // a network too large for any machine is an error here, not a native crash
        torch.manual_seed(_seed);
        var model = description.CreateModel();
        try
        {
            model.to(device ?? CPU);
            var result = Train(model, data, progress, cancellationToken);
            return new TrainedModel(model, description, result);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Trains <paramref name="model"/> in place on <paramref name="data"/>: an <see cref="ImageSet"/> in memory, or any
    /// <see cref="IImageSource"/> read batch by batch ahead of the model (<see cref="AdversarialTrainingOptions.Prefetch"/>),
    /// with the same batches, and so the same result, either way.
    /// </summary>
    public TrainingResult Train(Module<Tensor, Tensor> model, IImageSource data, IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(data);
        if (_options.Distributed is not null && _replicas is null) return TrainDistributed(model, data, progress, cancellationToken);
        if (data.RowCount == 0) throw new ArgumentException("The training data has no rows. Check the data path and any filters in front of the trainer.", nameof(data));
        CheckClasses(data);
        var o = _options;
        // Attacks inside training skip their own input check (ValidateInputs = false), so the range is checked here,
        // before any step: pixels of 0..255 on a [0, 1] model would train, and be attacked, meaninglessly.
        // A source read on demand is checked batch by batch instead (a pass over all of it would decode it all first).
        if (data is ImageSet inMemory && inMemory.RangeProblem(o.InputRange) is { } rangeProblem)
            throw new ArgumentException($"Training data: {rangeProblem}. Scale the pixels to {o.InputRange} or set AdversarialTrainingOptions.InputRange to the range they are in.", nameof(data));
        if (_checkpoints.Directory is { } checkpointDir && WritesFiles) ProbeWritable(checkpointDir);
        // One run per checkpoint folder: two would overwrite each other's checkpoints.
        using var folderLock = _checkpoints.Directory is { } lockDir && WritesFiles ? CheckpointLock.Acquire(lockDir) : null;
        var settings = _checkpoints.Directory is null ? null : Settings(data);
        var device = model.parameters().FirstOrDefault()?.device ?? CPU;
        var (rows, batch) = LocalShape(data.RowCount); // this rank's share (all of it in one process)
        long perEpoch = (rows + batch - 1) / batch;
        long total = Math.Min(perEpoch * o.Epochs, o.MaxSteps ?? long.MaxValue);

        var optimizer = CreateOptimizer(model);
        long step = 0;
        (byte[] Bytes, string Path)? savedReplicaBuffers = null; // every rank's BatchNorm statistics (distributed, per replica)
        if (_checkpoints is { Resume: true, Directory: { } dir } && WritesFiles && Checkpoint.Exists(dir))
        {
            step = Checkpoint.Load(dir, model, optimizer, Fingerprint(model), settings, out savedReplicaBuffers, SettingsBeforeRecorded);
            _log?.Invoke($"Resumed from step {step} of {total} ({dir}).");
        }
        step = StartReplicas(model, optimizer, step, savedReplicaBuffers);
        long resumedFrom = step;
        var history = new List<TrainingProgress>();
        var watch = Stopwatch.StartNew();
        double sumLoss = 0, cleanRight = 0, cleanSeen = 0, advRight = 0, advSeen = 0, lastLoss = double.NaN;
        long windowExamples = 0;
        var window = Stopwatch.StartNew();
        // Batch i holds rows of the epoch's permutation (EpochOrder); the reader reads them ahead on its workers.
        var orders = new Dictionary<long, int[]>();
        int[] RowsOf(long s)
        {
            long e = s / perEpoch;
            int[]? order;
            lock (orders)
                if (!orders.TryGetValue(e, out order))
                {
                    foreach (long old in orders.Keys.Where(k => k < e - 1).ToList()) orders.Remove(old);
                    orders[e] = order = LocalEpochOrder(data.RowCount, e); // this rank's share (all of it in one process)
                }
            int first = (int)((s % perEpoch) * batch);
            return order.AsSpan(first, Math.Min(batch, rows - first)).ToArray();
        }
        using var batches = new BatchPrefetcher(data, step, total, RowsOf, data is ImageSet ? PrefetchOptions.Synchronous : o.Prefetch);

        model.train();
        while (step < total)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long epoch = step / perEpoch;
            SetLearningRate(optimizer, epoch);

            using (var scope = NewDisposeScope())
            {
                var (x, y) = TakeBatch(batches, data, step, device, model, optimizer, settings, resumedFrom);
                int m = (int)x.shape[0];
                var stats = Step(model, optimizer, x, y, step);
                lastLoss = stats.Loss;
                sumLoss += stats.Loss;
                cleanRight += stats.CleanRight; cleanSeen += stats.CleanCount;
                advRight += stats.AdvRight; advSeen += stats.AdvCount;
                windowExamples += m;
            }
            step++;

            if (step % o.ProgressEvery == 0 || step == total)
            {
                long since = step % o.ProgressEvery == 0 ? o.ProgressEvery : step % o.ProgressEvery;
                if (_replicas is not null)
                {
                    var sums = new double[] { sumLoss, cleanRight, cleanSeen, advRight, advSeen, windowExamples };
                    SumProgress(sums); // figures of every rank
                    (sumLoss, cleanRight, cleanSeen, advRight, advSeen, windowExamples) = (sums[0], sums[1], sums[2], sums[3], sums[4], (long)sums[5]);
                }
                var p = new TrainingProgress(step, (int)epoch + 1, total, sumLoss / since, cleanSeen > 0 ? cleanRight / cleanSeen : double.NaN,
                    advSeen > 0 ? advRight / advSeen : double.NaN, windowExamples / Math.Max(1e-9, window.Elapsed.TotalSeconds), CurrentLearningRate(optimizer));
                history.Add(p);
                progress?.Report(p);
                _log?.Invoke(p.ToString());
                sumLoss = cleanRight = cleanSeen = advRight = advSeen = 0;
                windowExamples = 0;
                window.Restart();
            }
            if (_checkpoints.Directory is { } ckpt && (step % _checkpoints.Every == 0 || step == total))
            {
                SyncReplicas(model, step);
                var replicaBuffers = GatherReplicaBuffers(model); // every rank takes part; rank 0 writes
                if (WritesFiles) Checkpoint.Save(ckpt, model, optimizer, step, Fingerprint(model), settings, replicaBuffers);
            }
        }
        if (_checkpoints.Directory is null) SyncReplicas(model, step);
        model.eval();
        return new TrainingResult(step, resumedFrom, watch.Elapsed, lastLoss, history);
    }

    /// <summary>
    /// Batch <paramref name="step"/> from the reader. When it cannot be read (a corrupt file in a folder read on demand),
    /// the steps done so far are saved as a checkpoint first, so fixing the file and resuming loses nothing.
    /// </summary>
    private (Tensor X, Tensor Y) TakeBatch(BatchPrefetcher batches, IImageSource data, long step, Device device, Module<Tensor, Tensor> model,
        TorchSharp.Modules.OptimizerHelper optimizer, Dictionary<string, string>? settings, long resumedFrom)
    {
        Tensor x = null!, y = null!;
        Exception? failure = null;
        try
        {
            (x, y) = batches.Take(step, device);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            failure = e;
        }
        bool saves = _checkpoints.Directory is not null && step > resumedFrom && step % _checkpoints.Every != 0;
        // Several ranks reading on demand: every rank learns whether any rank's batch failed, so that all of them take
        // part in the checkpoint (every rank's BatchNorm statistics, DistributedFailedRead) and then stop together.
        if (_replicas is { Size: > 1 } && _checkpoints.Directory is not null && data is not ImageSet)
            DistributedFailedRead(failure, step, model, optimizer, settings, saves);
        else if (failure is not null)
        {
            // The last periodic checkpoint may be far behind: save this step's state (the failed batch changed nothing).
            // A rank of a distributed run without the agreement above saves nothing: it alone cannot save every rank's state.
            if (saves && _replicas is not { Size: > 1 })
            {
                Checkpoint.Save(_checkpoints.Directory!, model, optimizer, step, Fingerprint(model), settings);
                _log?.Invoke($"Reading the batch of step {step + 1} failed; saved a checkpoint at step {step} in '{_checkpoints.Directory}'. Fix the data and resume.");
            }
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
        if (data is not ImageSet && _options.InputRange.Problem(x) is { } problem)
            throw new ArgumentException($"Training data, batch of step {step + 1}: {problem}. Scale the pixels to {_options.InputRange} or set AdversarialTrainingOptions.InputRange to the range they are in.", nameof(data));
        return (x, y);
    }

    internal readonly record struct StepStats(double Loss, int CleanRight, int CleanCount, int AdvRight, int AdvCount);

    /// <summary>One step of Algorithm 1 on the minibatch (x, y).</summary>
    internal StepStats Step(Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer, Tensor x, Tensor y, long step)
    {
        var o = _options;
        int m = (int)x.shape[0];
        // A last, smaller minibatch keeps the proportion k / m.
        int k = step < o.DelaySteps ? 0 : (int)Math.Round((double)o.AdversarialPerBatch * m / o.BatchSize);
        long stepSeed = StepSeed(step) + ReplicaSeedOffset;
        torch.manual_seed(stepSeed); // dropout and other in-model randomness: a function of (seed, step)

        Tensor input = x;
        if (k > 0)
        {
            // using: the generator's native handle must outlive the draws (it is finalizable, like TorchSharp's Scalars).
            using var generator = new Generator((ulong)stepSeed, x.device);
            string method = o.MethodMix is { Count: > 0 } mix ? mix[new Random(unchecked((int)stepSeed)).Next(mix.Count)] : o.Method;
            var attack = AttackRegistry.Create(method, new AttackOptions { InputRange = o.InputRange, Seed = stepSeed + 1, ValidateInputs = false, Compute = o.Compute ?? ComputeOptions.Default });
            var eps = o.Epsilon.Sample(k, generator, x.device);
            var adversarial = attack.Generate(model, x[..k], y[..k], eps);
            input = cat(new[] { adversarial, x[k..] }, 0);
        }

        optimizer.zero_grad();
        Tensor logits, loss;
        // The training pass as o.Compute asks: channels-last input; with bfloat16, a replica whose gradients go to the master.
        var pass = ComputeModel.For(model, o.Compute ?? ComputeOptions.Default, evaluationOnly: false);
        using var hold = pass is null ? default : ComputeModel.HoldFor(pass);
        var (network, networkInput) = pass?.Route(input) ?? (model, input);
        // Distributed: buckets of gradients start their allreduce during the backward pass when it runs on the network
        // itself (a reduced-precision replica's gradients reach the network only after it).
        _gradients?.BeginStep(watchBackward: ReferenceEquals(network, model));
        if (network is IAuxiliaryClassifier { HasAuxiliaryLogits: true } withAux)
        {
            // Inception's side classifier adds its own weighted loss, as in the network's original training.
            var (main, aux) = withAux.ForwardWithAuxiliary(networkInput);
            logits = ComputeModel.Output(main, input);
            if (aux is not null) aux = ComputeModel.Output(aux, input);
            loss = WeightedLoss(F.cross_entropy(main, y, reduction: Reduction.None, label_smoothing: o.LabelSmoothing), k, o.AdversarialLossWeight);
            if (aux is not null)
                loss = loss.Plus(WeightedLoss(F.cross_entropy(aux, y, reduction: Reduction.None, label_smoothing: o.LabelSmoothing), k, o.AdversarialLossWeight)
                    .Times(withAux.AuxiliaryLossWeight));
        }
        else
        {
            logits = ComputeModel.Output(network.call(networkInput), input);
            loss = WeightedLoss(F.cross_entropy(logits, y, reduction: Reduction.None, label_smoothing: o.LabelSmoothing), k, o.AdversarialLossWeight);
        }
        _gradients?.EndForward();
        double lossValue = loss.item<float>();
        if (!double.IsFinite(lossValue))
            throw new InvalidOperationException(
                $"Training diverged at step {step + 1}: the loss is {lossValue}. Lower the learning rate (now {CurrentLearningRate(optimizer)}), " +
                "check the inputs for NaN, or use an optimiser with smaller steps.");
        loss.backward();
        pass?.CopyGradientsToMaster();
        _gradients?.Finish(); // every gradient is the mean over the ranks from here on
        if (o.GradientClipNorm > 0) ClipGradientNorm(model.parameters(), o.GradientClipNorm);
        optimizer.step();

        var right = logits.detach().argmax(1).eq(y);
        int advRight = k > 0 ? (int)right[..k].sum().item<long>() : 0;
        int cleanRight = (int)right[k..].sum().item<long>();
        return new StepStats(lossValue, cleanRight, m - k, advRight, k);
    }

    /// <summary>The paper's loss: <c>(sum_clean L + lambda sum_adv L) / ((m - k) + lambda k)</c>; the first k are adversarial.</summary>
    public static Tensor WeightedLoss(Tensor perExampleLoss, int k, double lambda)
    {
        long m = perExampleLoss.shape[0];
        if (k == 0) return perExampleLoss.mean();
        var clean = perExampleLoss[k..].sum();
        var adversarial = perExampleLoss[..k].sum();
        return clean.Plus(adversarial.Times(lambda)).DividedBy((m - k) + lambda * k); // held Scalars: see HeldScalars
    }

    /// <summary>
    /// TensorFlow's <c>clip_by_global_norm</c>: when the L2 norm of all gradients together exceeds <paramref name="maxNorm"/>,
    /// every gradient is multiplied by <c>maxNorm / norm</c>; returns the norm before clipping.
    /// </summary>
    internal static double ClipGradientNorm(IEnumerable<TorchSharp.Modules.Parameter> parameters, double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var grads = parameters.Select(p => p.grad).OfType<Tensor>().ToList();
        if (grads.Count == 0) return 0;
        // Sum of squares in double (tensor-tensor products take no Scalar), one device sync for all parameters.
        var squares = grads.Select(g =>
        {
            var d = g.detach().to(ScalarType.Float64);
            return d.mul(d).sum();
        }).ToArray();
        double total = Math.Sqrt(stack(squares).sum().item<double>());
        if (total > maxNorm && double.IsFinite(total))
        {
            using var factor = (maxNorm / total).ToScalar(); // held through the calls (see HeldScalars)
            foreach (var g in grads) g.mul_(factor);
        }
        return total;
    }

    /// <summary>A classifier needs examples of at least two classes; one class means a wrong filter or folder.</summary>
    private static void CheckClasses(IImageSource data)
    {
        uint first = data.GetLabel(0);
        for (int i = 1; i < data.RowCount; i++)
            if (data.GetLabel(i) != first) return;
        throw new ArgumentException(
            $"All {data.RowCount} training rows have the same label ('{data.ClassNames[(int)first]}'); a classifier needs examples of at least two classes. " +
            "Check the label column and any filters or folders in front of the trainer.", nameof(data));
    }

    /// <summary>Fails before the first step, not at the first checkpoint, when the checkpoint folder cannot be written.</summary>
    private static void ProbeWritable(string directory)
    {
        try
        {
            AtomicFile.EnsureWritableFolder(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot write checkpoints to '{directory}' ({e.Message}). Choose a writable CheckpointOptions.Directory.", e);
        }
    }

    internal long StepSeed(long step) => (long)_seed * 1_000_003L + step;

    internal int[] EpochOrder(int rows, long epoch) => Data.EpochOrder.For(_seed, epoch, rows);

    internal TorchSharp.Modules.OptimizerHelper CreateOptimizer(Module<Tensor, Tensor> model)
    {
        var o = _options;
        var parameters = model.parameters();
        // TorchSharp's own step() frees its temporary Scalars at the GC's mercy; these hold them (HeldScalarOptimizers.cs).
        return o.Optimizer switch
        {
            OptimizerKind.RmsProp => new HeldScalarRmsProp(parameters, o.LearningRate, o.RmsPropDecay, o.RmsPropEpsilon, o.WeightDecay, o.Momentum),
            OptimizerKind.Sgd => new HeldScalarSgd(parameters, o.LearningRate, o.Momentum, o.WeightDecay),
            OptimizerKind.Adam => new HeldScalarAdam(parameters, o.LearningRate, o.WeightDecay),
            OptimizerKind.TensorFlowRmsProp => new TensorFlowRmsProp(parameters, o.LearningRate, o.RmsPropDecay, o.RmsPropEpsilon, o.WeightDecay, o.Momentum),
            _ => throw new ArgumentOutOfRangeException(nameof(o.Optimizer), o.Optimizer, "Unknown optimiser."),
        };
    }

    private void SetLearningRate(TorchSharp.Modules.OptimizerHelper optimizer, long epoch)
    {
        var o = _options;
        double lr = o.LearningRateAt(epoch);
        foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
    }

    private static double CurrentLearningRate(TorchSharp.Modules.OptimizerHelper optimizer) => optimizer.ParamGroups.First().LearningRate;

    /// <summary>
    /// The value of each setting recorded after checkpoints were first written, for a checkpoint that does not record
    /// it: it was written by a version that trained with that value (every run before the precision was recorded that
    /// resumed was checked without it, so an older checkpoint is taken as 32-bit).
    /// </summary>
    internal static IReadOnlyDictionary<string, string> SettingsBeforeRecorded { get; } = new Dictionary<string, string>
    {
        ["Precision"] = ComputeOptions.PrecisionName(ComputePrecision.Float32),
    };

    /// <summary>
    /// Everything besides the architecture that decides what the steps do: options, seed, precision and data. A resume
    /// must match all of them (Epochs and MaxSteps may change: training longer is what resuming is for).
    /// </summary>
    internal Dictionary<string, string> Settings(IImageSource data)
    {
        var o = _options;
        static string N(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        var settings = new Dictionary<string, string>
        {
            ["Seed"] = _seed.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["BatchSize"] = o.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["AdversarialPerBatch"] = o.AdversarialPerBatch.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["AdversarialLossWeight"] = N(o.AdversarialLossWeight),
            ["Method"] = o.MethodMix is { Count: > 0 } mix ? "mix " + string.Join(",", mix) : o.Method,
            ["Epsilon"] = o.Epsilon.ToString() ?? "",
            ["DelaySteps"] = o.DelaySteps.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Optimizer"] = o.Optimizer.ToString(),
            ["LearningRate"] = N(o.LearningRate),
            ["RmsPropDecay"] = N(o.RmsPropDecay),
            ["RmsPropEpsilon"] = N(o.RmsPropEpsilon),
            ["Momentum"] = N(o.Momentum),
            ["WeightDecay"] = N(o.WeightDecay),
            ["LabelSmoothing"] = N(o.LabelSmoothing),
            ["LearningRateDecay"] = o.LearningRateDecayEpochs == 0 ? "none" : $"{N(o.LearningRateDecay)} every {o.LearningRateDecayEpochs} epochs",
            ["InputRange"] = $"{o.InputRange.Description} [{string.Join(",", o.InputRange.Min.Select(v => N(v)))}..{string.Join(",", o.InputRange.Max.Select(v => N(v)))}]",
            ["Data.Rows"] = data.RowCount.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Data.Classes"] = string.Join(",", data.ClassNames),
            ["Data.Fingerprint"] = data.Fingerprint(),
        };
        // Only when on, so checkpoints written before clipping existed still resume.
        if (o.GradientClipNorm > 0) settings["GradientClipNorm"] = N(o.GradientClipNorm);
        // The precision changes what every step computes (bfloat16 passes round each product). The layout options
        // (channels-last, BatchNorm folding, the fast-path check) only reorder float additions, like another thread
        // count, so a resume may change them.
        settings["Precision"] = ComputeOptions.PrecisionName((o.Compute ?? ComputeOptions.Default).Precision);
        AddDistributedSettings(settings);
        return settings;
    }

    internal string Fingerprint(Module<Tensor, Tensor> model)
        => $"{model.GetType().Name};{_options.Optimizer};" + string.Join(";", model.state_dict().Select(kv => $"{kv.Key}[{string.Join(",", kv.Value.shape)}]"));
}
