using System.Runtime.InteropServices;
using System.Security.Cryptography;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training.Distributed;

/// <summary>
/// The replicas of a synchronous data-parallel run, one per MPI rank: what the trainer asks of them (initial weights
/// from rank 0, the sums of the gradient buckets (<see cref="GradientBuckets"/>), optional BatchNorm averaging, the
/// same-weights check). Tensors may live on any device; they go through CPU memory.
/// </summary>
internal sealed class Replicas
{
    private readonly Mpi _mpi;

    private Replicas(Mpi mpi) => _mpi = mpi;

    public int Rank => _mpi.Rank;
    public int Size => _mpi.Size;

    /// <summary>Joins MPI_COMM_WORLD (initialising MPI if needed).</summary>
    public static Replicas Join() => new(Mpi.World);

    /// <summary>
    /// Checks that a global minibatch of <paramref name="batchSize"/> with <paramref name="adversarial"/> adversarial
    /// examples splits evenly over the ranks (each rank: m / N examples, k / N of them adversarial).
    /// </summary>
    public void CheckSplit(int batchSize, int adversarial)
    {
        if (batchSize % Size != 0 || adversarial % Size != 0)
            throw new ArgumentException(
                $"Distributed training over {Size} ranks splits each minibatch evenly: BatchSize (m = {batchSize}) and AdversarialPerBatch (k = {adversarial}) " +
                $"must both be multiples of {Size}. Choose m and k divisible by the number of ranks (m is the global minibatch: for the paper's 50 replicas " +
                "of 32 images, m = 1600 and k = 800), or launch another number of ranks.");
    }

    /// <summary>Copies rank 0's weights and buffers (every state_dict tensor) to every rank.</summary>
    public void BroadcastState(nn.Module model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (_, tensor) in model.state_dict())
        {
            var cpu = tensor.detach().cpu().contiguous().clone();
            _mpi.Broadcast(Bytes(cpu));
            tensor.copy_(cpu);
        }
    }

    /// <summary>
    /// Sums <paramref name="buffer"/> (native memory: a tensor's) over the ranks, in place: one MPI_Iallreduce, waited for
    /// as <see cref="Wait"/> says. The gradient buckets' one allreduce, with or without overlap.
    /// </summary>
    public void SumInPlace(Span<float> buffer) => _mpi.SumInPlaceNonBlocking(buffer, Wait);

    /// <summary>How <see cref="SumInPlace"/> waits: ADVML_ALLREDUCE_WAIT=block|yield|sleep (default yield).</summary>
    internal static AllreduceWait Wait { get; set; } = Environment.GetEnvironmentVariable("ADVML_ALLREDUCE_WAIT")?.ToLowerInvariant() switch
    {
        "block" => AllreduceWait.Block,
        "sleep" => AllreduceWait.Sleep,
        _ => AllreduceWait.Yield,
    };

    /// <summary>Whether a thread other than the one that joined may call MPI (one at a time): MPI_THREAD_SERIALIZED or more.</summary>
    public bool AllowsCommunicationThread => _mpi.ThreadLevel >= Mpi.SerializedThreads;

    /// <summary>Replaces every floating-point buffer (BatchNorm's running mean and variance) by its mean over the ranks.</summary>
    public void AverageBuffers(nn.Module model)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (_, buffer) in model.named_buffers())
        {
            if (!buffer.is_floating_point()) continue; // counters (num_batches_tracked) are equal on every rank
            var cpu = buffer.detach().to(ScalarType.Float64).cpu().contiguous().clone();
            _mpi.AllreduceInPlace(MemoryMarshal.Cast<byte, double>(Bytes(cpu)), Mpi.Double);
            using var n = ((double)Size).ToScalar();
            buffer.copy_(cpu.div_(n));
        }
    }

    /// <summary>
    /// Fails when the replicas' weights differ: a 64-bit digest of every parameter (and, when <paramref name="withBuffers"/>,
    /// every buffer) compared over the ranks with one allreduce of (h, ~h) under MAX (giving max h and ~min h).
    /// </summary>
    public void VerifySameWeights(nn.Module model, long step, bool withBuffers)
    {
        long h = Digest(model, withBuffers);
        Span<long> both = stackalloc long[] { h, ~h };
        _mpi.AllreduceInPlace(both, Mpi.Int64, Mpi.OpMax);
        long max = both[0], min = ~both[1];
        if (min != max)
            throw new InvalidOperationException(
                $"The replicas' weights differ at step {step} (rank {Rank} has digest {h:x16}; digests range from {min:x16} to {max:x16}). " +
                "Every rank must run the same code, options, data and library versions (TorchSharp, libtorch, MPI) on the same kind of device; " +
                "restart from the last checkpoint, where they were equal.");
    }

    /// <summary>
    /// Every rank's buffers (<see cref="ReplicaBuffers.Bytes"/>) on rank 0, element r from rank r (one MPI_Gather); null
    /// on the other ranks. Every rank must call it.
    /// </summary>
    public byte[][]? GatherBuffers(nn.Module model)
    {
        byte[] mine = ReplicaBuffers.Bytes(model);
        Span<long> length = stackalloc long[] { mine.Length, ~(long)mine.Length };
        _mpi.AllreduceInPlace(length, Mpi.Int64, Mpi.OpMax);
        if (length[0] != ~length[1])
            throw new InvalidOperationException(
                $"The replicas' buffers differ in size (rank {Rank} has {mine.Length} bytes, others up to {length[0]}): every rank must build the same network.");
        if ((long)mine.Length * Size > Array.MaxLength)
            throw new InvalidOperationException($"The replicas' buffers ({mine.Length} bytes x {Size} ranks) exceed the 2 GB a checkpoint file of them can hold.");
        var all = Rank == 0 ? new byte[mine.Length * Size] : Array.Empty<byte>();
        _mpi.Gather(mine, all);
        if (Rank != 0) return null;
        return Enumerable.Range(0, Size).Select(r => all.AsSpan(r * mine.Length, mine.Length).ToArray()).ToArray();
    }

    /// <summary>
    /// Gives every rank its own buffers back (one MPI_Scatter): <paramref name="ranks"/>[r] (on rank 0; null elsewhere)
    /// becomes rank r's buffers. Every rank must call it.
    /// </summary>
    public void ScatterBuffers(nn.Module model, IReadOnlyList<byte[]>? ranks)
    {
        var mine = new byte[ReplicaBuffers.Length(model)];
        byte[] all = Array.Empty<byte>();
        if (Rank == 0)
        {
            if (ranks is null || ranks.Count != Size || ranks.Any(r => r.Length != mine.Length))
                throw new InvalidOperationException("internal: rank 0 scatters one part of the buffers' size per rank");
            all = ranks.SelectMany(r => r).ToArray();
        }
        _mpi.Scatter(all, mine);
        ReplicaBuffers.Load(model, mine);
    }

    /// <summary>Sums <paramref name="values"/> over the ranks, in place.</summary>
    public void Sum(Span<double> values) => _mpi.AllreduceInPlace(values, Mpi.Double);

    /// <summary>Rank 0's <paramref name="bytes"/> on every rank (other ranks pass null).</summary>
    public byte[] BroadcastBytes(byte[]? bytes)
    {
        Span<long> length = stackalloc long[] { Rank == 0 ? bytes!.LongLength : 0 };
        _mpi.Broadcast(MemoryMarshal.AsBytes(length));
        var result = Rank == 0 ? bytes! : new byte[length[0]];
        _mpi.Broadcast(result);
        return result;
    }

    /// <summary>Rank 0's value on every rank.</summary>
    public long BroadcastValue(long value)
    {
        Span<long> v = stackalloc long[] { value };
        _mpi.Broadcast(MemoryMarshal.AsBytes(v));
        return v[0];
    }

    /// <summary>
    /// Refuses to go on unless every rank has the same <paramref name="settings"/> (names and values), naming each that
    /// differs with this rank's value. Two allreduces of fixed size (the names' count, then one digest per name), so it
    /// runs before any collective whose size depends on the settings (a different row count would otherwise end in the
    /// MPI library's "Message truncated", a different seed in a model no one asked for).
    /// </summary>
    public void CheckSameSettings(IReadOnlyDictionary<string, string> settings)
    {
        var names = settings.Keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        // Each digest as its maximum and its negated minimum over the ranks: equal on every rank exactly when they agree.
        Span<double> shape = stackalloc double[] { names.Length, -names.Length, Digest52(string.Join("\n", names)), -Digest52(string.Join("\n", names)) };
        _mpi.AllreduceInPlace(shape, Mpi.Double, Mpi.OpMax);
        if (shape[0] != -shape[1] || shape[2] != -shape[3])
            throw new InvalidOperationException($"Rank {Rank} of {Size}: the ranks were started with different kinds of settings (this rank has {string.Join(", ", names)}). " +
                "Start every rank with the same command line, data and environment.");
        var digests = new double[2 * names.Length];
        for (int i = 0; i < names.Length; i++)
        {
            digests[2 * i] = Digest52(names[i] + "=" + settings[names[i]]);
            digests[2 * i + 1] = -digests[2 * i];
        }
        _mpi.AllreduceInPlace(digests.AsSpan(), Mpi.Double, Mpi.OpMax);
        var differing = names.Where((n, i) => digests[2 * i] != -digests[2 * i + 1]).ToList();
        if (differing.Count > 0)
            throw new InvalidOperationException($"Rank {Rank} of {Size}: the ranks were started with different settings: " +
                string.Join("; ", differing.Select(n => $"'{n}' differs (this rank: {settings[n]})")) +
                ". Every rank must train the same thing on the same data: start them with the same command line and data (mpirun -np N advml train ... --distributed).");
    }

    /// <summary>The first 52 bits of the text's SHA-256, as a double (exact: a double holds 53-bit integers).</summary>
    private static double Digest52(string text)
        => BitConverter.ToInt64(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(text))) & ((1L << 52) - 1);

    /// <summary>Stops every rank (after the caller has printed why).</summary>
    public void Abort(int code) => _mpi.Abort(code);

    internal static long Digest(nn.Module model, bool withBuffers)
    {
        using var scope = NewDisposeScope();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var tensors = model.named_parameters().Select(p => (p.name, (Tensor)p.parameter));
        if (withBuffers) tensors = tensors.Concat(model.named_buffers());
        foreach (var (name, tensor) in tensors)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(name));
            hash.AppendData(Bytes(tensor.detach().cpu().contiguous()));
        }
        return BitConverter.ToInt64(hash.GetHashAndReset(), 0);
    }

    /// <summary>The bytes of a contiguous CPU tensor, in place (no copy).</summary>
    private static Span<byte> Bytes(Tensor t)
    {
        if (t.device_type != DeviceType.CPU || !t.is_contiguous()) throw new InvalidOperationException("internal: a contiguous CPU tensor is needed");
        return t.bytes;
    }
}
