namespace Microsoft.ML.Adversarial.Training;

/// <summary>
/// Synchronous data-parallel training over MPI (the paper's 50 replicas): set
/// <see cref="AdversarialTrainingOptions.Distributed"/> and launch the program with <c>mpirun -np N</c>. Every rank
/// runs Algorithm 1 on its m / N examples of each global minibatch (k / N of them adversarial, made from its own
/// replica); the gradients are averaged with one allreduce per step; the initial weights come from rank 0; rank 0
/// alone writes checkpoints. <see cref="AdversarialTrainingOptions.BatchSize"/> and
/// <see cref="AdversarialTrainingOptions.AdversarialPerBatch"/> are the global m and k (both multiples of N).
/// Needs an MPI of the MPICH ABI (MPICH, Intel MPI, Cray MPICH, MVAPICH); see docs/scale.md.
/// </summary>
public sealed class DistributedTrainingOptions
{
    /// <summary>
    /// Average BatchNorm's running statistics over the replicas at every checkpoint and at the end of training. Off by
    /// default: each replica keeps its own statistics (the paper's choice) and the saved model has rank 0's.
    /// </summary>
    public bool AverageBatchNormStatistics { get; set; }

    /// <summary>The default <see cref="BucketMegabytes"/>.</summary>
    public const double DefaultBucketMegabytes = 4;

    /// <summary>
    /// Size of the buckets the gradients are averaged in, in MB (10^6 bytes of float32 gradients), filled in the order
    /// the backward pass produces the gradients (the reverse of the parameters' order); a parameter larger than a bucket
    /// is a bucket alone. 0: one bucket of every gradient, reduced after the backward pass. Every rank must use the same
    /// size. Default 4.
    /// </summary>
    public double BucketMegabytes { get; set; } = DefaultBucketMegabytes;

    /// <summary>
    /// Reduce each bucket on a communication thread as soon as the backward pass has finished its gradients, instead
    /// of all after the backward pass; the optimiser step waits for the last. The result is the same, bit for bit (the
    /// same allreduces of the same buckets). On by default; needs an MPI with at least MPI_THREAD_SERIALIZED (MPICH
    /// gives it), otherwise the buckets are reduced after the backward pass.
    /// </summary>
    public bool OverlapAllreduce { get; set; } = true;

    /// <summary>
    /// Joins the MPI job (initialising MPI once per process; it is finalised at exit) and returns this process's rank
    /// and the number of ranks: a program uses it to let rank 0 alone print and write files. Throws
    /// <see cref="DllNotFoundException"/>, naming the package to install, when no MPI library is found, and
    /// <see cref="InvalidOperationException"/> when no MPI launcher (mpiexec, mpirun, srun) started the process.
    /// </summary>
    public static (int Rank, int Size) Join()
    {
        var world = Distributed.Mpi.World;
        return (world.Rank, world.Size);
    }

    /// <summary>
    /// This process's rank and how many processes the MPI launcher that started it started (<c>mpiexec -np N</c>: N),
    /// from the launcher's environment, without initialising MPI; (0, 1) when none started it. A program that trains
    /// without <see cref="AdversarialTrainingOptions.Distributed"/> can refuse to run as one of several copies.
    /// </summary>
    public static (int Rank, int Size) Launched => Distributed.Mpi.Launched();
}
