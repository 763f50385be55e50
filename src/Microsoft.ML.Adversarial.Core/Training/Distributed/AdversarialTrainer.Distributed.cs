using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Training.Distributed;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Training;

// Synchronous data-parallel training (AdversarialTrainingOptions.Distributed): what the trainer does beyond one process.
public sealed partial class AdversarialTrainer
{
    private Replicas? _replicas;
    private GradientBuckets? _gradients; // the gradient averaging of a distributed run

    /// <summary>Rank 0 (and a one-process run) reads and writes checkpoints; other ranks only compute.</summary>
    private bool WritesFiles => _replicas is null || _replicas.Rank == 0;

    /// <summary>Each rank's own stream of random draws (epsilons, random starts, dropout); none added in one process.</summary>
    private long ReplicaSeedOffset => _replicas is { Size: > 1 } r ? (long)r.Rank << 40 : 0;

    /// <summary>
    /// Joins the MPI job and trains this rank's replica. With several ranks an error on any rank is printed with the
    /// rank and stops the whole job (MPI_Abort): the other ranks would otherwise wait forever in the next allreduce.
    /// The last checkpoint stays intact (rank 0 writes it atomically).
    /// </summary>
    private TrainingResult TrainDistributed(Module<Tensor, Tensor> model, IImageSource data, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        var replicas = Replicas.Join();
        replicas.CheckSplit(_options.BatchSize, _options.AdversarialPerBatch);
        _replicas = replicas;
        try
        {
            if (replicas.Size > 1) replicas.CheckSameSettings(RankSettings(model, data));
            using var gradients = CreateGradientBuckets(model, replicas);
            _gradients = gradients;
            var result = Train(model, data, progress, cancellationToken);
            return gradients.Statistics.Steps > 0 ? result with { GradientAveraging = Describe(gradients) } : result;
        }
        catch (PeerBatchFailedException) when (replicas.Size > 1)
        {
            // Another rank's batch could not be read: it prints its error and stops the job (MPI_Abort) right after the
            // checkpoint all ranks wrote together; this rank waits for that, bounded, saying nothing itself.
            Thread.Sleep(TimeSpan.FromSeconds(30));
            replicas.Abort(1);
            throw; // not reached
        }
        catch (Exception e) when (replicas.Size > 1)
        {
            string saved = _checkpoints.Directory is { } dir && Checkpoint.SavedStep(dir) is { } s ? $" The last checkpoint (step {s}) in '{dir}' is intact." : "";
            Console.Error.WriteLine($"Rank {replicas.Rank} of {replicas.Size} failed: {e.Message}{saved} Stopping every rank.");
            Console.Error.Flush();
            replicas.Abort(1);
            throw; // not reached
        }
        finally
        {
            _replicas = null;
            _gradients = null;
        }
    }

    /// <summary>Thrown on the ranks whose batch was read when another rank's was not (that rank reports the error).</summary>
    private sealed class PeerBatchFailedException(string message) : Exception(message);

    /// <summary>
    /// After every rank's read of step <paramref name="step"/>'s batch (<paramref name="failure"/>: this rank's error, or
    /// null): one allreduce tells every rank which ranks failed. When one did, every rank takes part in a checkpoint of the
    /// steps so far (when <paramref name="saves"/>), written by rank 0 with every rank's BatchNorm statistics, then the
    /// failed ranks throw their error and the others a <see cref="PeerBatchFailedException"/>. Every rank must call it.
    /// </summary>
    private void DistributedFailedRead(Exception? failure, long step, Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer,
        Dictionary<string, string>? settings, bool saves)
    {
        var r = _replicas!;
        var failed = new double[r.Size];
        failed[r.Rank] = failure is null ? 0 : 1;
        r.Sum(failed);
        var failedRanks = Enumerable.Range(0, r.Size).Where(i => failed[i] != 0).ToList();
        if (failedRanks.Count == 0) return;
        string dir = _checkpoints.Directory!;
        if (saves)
        {
            SyncReplicas(model, step);
            var replicaBuffers = GatherReplicaBuffers(model); // every rank takes part; rank 0 writes
            Exception? saveFailure = null;
            if (WritesFiles)
            {
                try
                {
                    Checkpoint.Save(dir, model, optimizer, step, Fingerprint(model), settings, replicaBuffers);
                    _log?.Invoke($"Reading the batch of step {step + 1} failed on rank {string.Join(", ", failedRanks)} of {r.Size}; saved a checkpoint at step {step} " +
                        $"in '{dir}'{(replicaBuffers is null ? "" : " with every rank's BatchNorm statistics")}. Fix the data and resume with the same number of ranks.");
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    saveFailure = e;
                }
            }
            // Every rank waits here until rank 0 has written the checkpoint: the failed rank stops the job right after.
            if (r.BroadcastValue(saveFailure is null ? 1 : 0) == 0 && saveFailure is not null)
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(saveFailure).Throw();
        }
        if (failure is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        throw new PeerBatchFailedException($"rank {failedRanks[0]} of {r.Size} could not read the batch of step {step + 1}");
    }

    /// <summary>
    /// The buckets the gradients are averaged in (<see cref="DistributedTrainingOptions.BucketMegabytes"/>), reduced during
    /// the backward pass when <see cref="DistributedTrainingOptions.OverlapAllreduce"/> is on, there are several ranks and
    /// MPI lets a second thread call it (SERIALIZED).
    /// </summary>
    private GradientBuckets CreateGradientBuckets(Module<Tensor, Tensor> model, Replicas replicas)
    {
        var d = _options.Distributed ?? new DistributedTrainingOptions();
        bool overlap = d.OverlapAllreduce && replicas.Size > 1 && replicas.AllowsCommunicationThread;
        var buckets = new GradientBuckets(model.parameters(), d.BucketMegabytes, replicas.Size, replicas.SumInPlace, overlap);
        buckets.Watch(model);
        return buckets;
    }

    private static string Describe(GradientBuckets g)
    {
        var s = g.Statistics;
        double floats = g.Buckets.Sum(b => (double)b.Length);
        string how = g.Overlaps
            ? $"overlapped with the backward pass: {(double)s.EarlyBuckets / s.Steps:F1} of {g.Buckets.Count} buckets started before it ended, {s.OverlapFraction:P0} of the allreduce time hidden"
            : "after the backward pass";
        return FormattableString.Invariant(
            $"Gradient allreduce: {g.Buckets.Count} bucket(s), {floats * 4 / 1e6:F2} MB per step, {how}; {s.CommunicationMs / s.Steps:F2} ms of allreduce and {s.FinishMs / s.Steps:F2} ms after the backward pass per step.");
    }

    /// <summary>This rank's rows of <paramref name="epoch"/>'s order (all of them in one process).</summary>
    internal int[] LocalEpochOrder(int rows, long epoch)
        => _replicas is { } r ? Data.EpochOrder.For(_seed, epoch, rows, r.Rank, r.Size) : EpochOrder(rows, epoch);

    /// <summary>Rows per epoch and minibatch size of this rank.</summary>
    private (int Rows, int Batch) LocalShape(int rows)
        => _replicas is { } r ? (Data.EpochOrder.ShardLength(rows, r.Size), _options.BatchSize / r.Size) : (rows, _options.BatchSize);

    /// <summary>True when the replicas' buffers (BatchNorm statistics) differ and a checkpoint must hold every rank's.</summary>
    private bool KeepsReplicaBuffers(Module<Tensor, Tensor> model)
        => _replicas is { Size: > 1 } && _options.Distributed?.AverageBatchNormStatistics != true && ReplicaBuffers.Any(model);

    /// <summary>
    /// At a checkpoint, with BatchNorm statistics per replica: every rank's buffers gathered to rank 0, as the writer of
    /// the checkpoint's <see cref="Checkpoint.ReplicaBuffersFile"/> (null on other ranks and when the buffers are equal).
    /// Every rank must call it.
    /// </summary>
    private Action<Stream>? GatherReplicaBuffers(Module<Tensor, Tensor> model)
    {
        if (!KeepsReplicaBuffers(model)) return null;
        var ranks = _replicas!.GatherBuffers(model);
        return ranks is null ? null : stream => ReplicaBuffers.Write(stream, model, ranks);
    }

    /// <summary>
    /// Makes every replica start equal: rank 0's step (0, or the one it resumed from), its optimiser state (on resume)
    /// and its weights and buffers go to every rank. On resume with BatchNorm statistics per replica, each rank then gets
    /// its own statistics back from <paramref name="savedReplicaBuffers"/> (rank 0's checkpoint file).
    /// </summary>
    private long StartReplicas(Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer, long step,
        (byte[] Bytes, string Path)? savedReplicaBuffers = null)
    {
        if (_replicas is not { } r) return step;
        step = r.BroadcastValue(step);
        if (step > 0)
        {
            // The optimiser's state (moments, step counts) as rank 0 loaded it, through a file: TorchSharp reads it from one.
            string file = Path.Combine(Path.GetTempPath(), $"advml-optimizer-{Environment.ProcessId}-{Guid.NewGuid():N}.dat");
            try
            {
                if (r.Rank == 0) optimizer.save_state_dict(file);
                byte[] bytes = r.BroadcastBytes(r.Rank == 0 ? File.ReadAllBytes(file) : null);
                if (r.Rank != 0)
                {
                    File.WriteAllBytes(file, bytes);
                    optimizer.load_state_dict(file);
                }
            }
            finally
            {
                File.Delete(file);
            }
        }
        r.BroadcastState(model);
        if (step > 0 && KeepsReplicaBuffers(model))
        {
            // Rank 0 checks the file first (a bad one stops the job with its error), then says whether it has one.
            byte[][]? ranks = r.Rank == 0 && savedReplicaBuffers is { } saved ? ReplicaBuffers.Read(saved.Bytes, model, r.Size, saved.Path) : null;
            if (r.BroadcastValue(ranks is null ? 0 : 1) == 1) r.ScatterBuffers(model, ranks);
            else if (r.Rank == 0)
                _log?.Invoke("The checkpoint holds rank 0's BatchNorm statistics only (written before every rank's were saved, or after a failed read): " +
                    "every rank resumes with them, so ranks other than 0 do not continue exactly as an uninterrupted run.");
        }
        return step;
    }

    /// <summary>At a checkpoint and at the end: BatchNorm statistics averaged (when asked), then the same-weights check.</summary>
    private void SyncReplicas(Module<Tensor, Tensor> model, long step)
    {
        if (_replicas is not { } r) return;
        bool average = _options.Distributed?.AverageBatchNormStatistics == true;
        if (average) r.AverageBuffers(model);
        r.VerifySameWeights(model, step, withBuffers: average);
    }

    /// <summary>Progress figures over every rank: sums of the window's counts, the loss as the mean of the ranks' losses.</summary>
    private void SumProgress(Span<double> window)
    {
        if (_replicas is not { } r) return;
        r.Sum(window);
        window[0] /= r.Size;
    }

    /// <summary>The settings a distributed checkpoint adds (absent in one process, so earlier checkpoints still resume).</summary>
    /// <summary>What every rank must agree on: the checkpoint settings (options, seed, data), the length of the run and the network.</summary>
    private Dictionary<string, string> RankSettings(Module<Tensor, Tensor> model, IImageSource data)
    {
        var settings = Settings(data);
        settings["Epochs"] = _options.Epochs.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["MaxSteps"] = _options.MaxSteps?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none";
        settings["Network"] = Fingerprint(model);
        settings["Resume"] = _checkpoints.Resume.ToString();
        // The buckets decide the allreduces every rank makes (overlap does not: the same calls, earlier).
        settings["Distributed.BucketMegabytes"] = (_options.Distributed?.BucketMegabytes ?? DistributedTrainingOptions.DefaultBucketMegabytes).ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        return settings;
    }

    private void AddDistributedSettings(Dictionary<string, string> settings)
    {
        if (_replicas is not { } r) return;
        settings["Distributed.Ranks"] = r.Size.ToString(System.Globalization.CultureInfo.InvariantCulture);
        settings["Distributed.AverageBatchNormStatistics"] = (_options.Distributed?.AverageBatchNormStatistics == true).ToString();
    }
}
