using System.Runtime.InteropServices;

namespace Microsoft.ML.Adversarial.Training.Distributed;

/// <summary>
/// The few MPI calls synchronous data-parallel training needs, bound with P/Invoke to an MPI of the MPICH ABI (MPICH,
/// Intel MPI, Cray MPICH, MVAPICH), whose handles are integers fixed by that ABI (values checked against MPICH 4.0's
/// <c>mpi.h</c>). The library is loaded only when distributed training is requested; a missing one is an error naming
/// the package to install. One process-wide instance (<see cref="World"/>): MPI is initialised once per process and
/// finalised when the process exits.
/// </summary>
internal sealed class Mpi
{
    // MPICH ABI handles (mpi.h: typedef int MPI_Comm/MPI_Datatype/MPI_Op).
    private const int CommWorld = 0x44000000;
    internal const int Byte = 0x4c00010d;
    internal const int Float = 0x4c00040a;
    internal const int Double = 0x4c00080b;
    internal const int Int64 = 0x4c00083a;
    internal const int OpMax = 0x58000001;
    internal const int OpMin = 0x58000002;
    internal const int OpSum = 0x58000003;
    private const int ThreadSerialized = 2;
    private static readonly nint InPlace = -1; // MPI_IN_PLACE is (void *) -1
    private static readonly nint StatusIgnore = 1; // MPI_STATUS_IGNORE is (MPI_Status *) 1
    private const int MaxErrorString = 512;

    /// <summary>Library names tried in turn: Debian's MPICH package, upstream MPICH / Intel MPI, then the unversioned link.</summary>
    internal static readonly string[] LibraryNames = { "libmpich.so.12", "libmpi.so.12", "libmpich.so", "libmpi.so" };

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int InitThreadFn(nint argc, nint argv, int required, out int provided);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int FlagFn(out int flag);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CommIntFn(int comm, out int value);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int AllreduceFn(nint sendBuffer, ref byte buffer, int count, int datatype, int op, int comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int IallreduceFn(nint sendBuffer, ref byte buffer, int count, int datatype, int op, int comm, out int request);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int TestFn(ref int request, out int flag, nint status);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int WaitFn(ref int request, nint status);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int BcastFn(ref byte buffer, int count, int datatype, int root, int comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int RootedFn(ref byte sendBuffer, int sendCount, int sendType, ref byte receiveBuffer, int receiveCount, int receiveType, int root, int comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int CommFn(int comm);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int AbortFn(int comm, int code);
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int VoidFn();
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)] private delegate int ErrorStringFn(int code, byte[] text, out int length);

    private static readonly object Gate = new();
    private static Mpi? _world;

    private readonly InitThreadFn _initThread;
    private readonly FlagFn _initialized, _finalized, _queryThread;
    private readonly CommIntFn _rank, _size;
    private readonly AllreduceFn _allreduce;
    private readonly IallreduceFn _iallreduce;
    private readonly TestFn _test;
    private readonly WaitFn _wait;
    private readonly BcastFn _bcast;
    private readonly RootedFn _gather, _scatter;
    private readonly CommFn _barrier;
    private readonly AbortFn _abort;
    private readonly VoidFn _finalize;
    private readonly ErrorStringFn _errorString;
    private bool _ownsInit;

    /// <summary>This process's rank in MPI_COMM_WORLD (0 .. <see cref="Size"/> - 1).</summary>
    public int Rank { get; }
    /// <summary>Processes in MPI_COMM_WORLD.</summary>
    public int Size { get; }
    /// <summary>
    /// The thread support MPI gives (MPI_Query_thread: 0 SINGLE, 1 FUNNELED, 2 SERIALIZED, 3 MULTIPLE). At
    /// <see cref="SerializedThreads"/> or above, any one thread at a time may call MPI: the gradient buckets' communication
    /// thread (<see cref="GradientBuckets"/>) needs it.
    /// </summary>
    public int ThreadLevel { get; }

    /// <summary>MPI_THREAD_SERIALIZED.</summary>
    internal const int SerializedThreads = ThreadSerialized;

    /// <summary>The file the binding loaded.</summary>
    public string LibraryPath { get; }

    private Mpi(nint library, string path)
    {
        LibraryPath = path;
        T Fn<T>(string name) where T : Delegate
            => Marshal.GetDelegateForFunctionPointer<T>(NativeLibrary.TryGetExport(library, name, out nint f) ? f
                : throw new DllNotFoundException($"'{path}' has no {name}: it is not an MPI library."));
        if (NativeLibrary.TryGetExport(library, "ompi_mpi_comm_world", out _))
            throw new DllNotFoundException(
                $"'{path}' is Open MPI, whose handles differ from the MPICH ABI this binding uses. Install MPICH (Debian/Ubuntu: apt-get install mpich) " +
                "and launch with MPICH's mpirun, or point ADVML_MPI_LIBRARY at an MPICH-ABI library (MPICH, Intel MPI, Cray MPICH, MVAPICH).");
        _initThread = Fn<InitThreadFn>("MPI_Init_thread");
        _initialized = Fn<FlagFn>("MPI_Initialized");
        _finalized = Fn<FlagFn>("MPI_Finalized");
        _queryThread = Fn<FlagFn>("MPI_Query_thread");
        _rank = Fn<CommIntFn>("MPI_Comm_rank");
        _size = Fn<CommIntFn>("MPI_Comm_size");
        _allreduce = Fn<AllreduceFn>("MPI_Allreduce");
        _iallreduce = Fn<IallreduceFn>("MPI_Iallreduce");
        _test = Fn<TestFn>("MPI_Test");
        _wait = Fn<WaitFn>("MPI_Wait");
        _bcast = Fn<BcastFn>("MPI_Bcast");
        _gather = Fn<RootedFn>("MPI_Gather");
        _scatter = Fn<RootedFn>("MPI_Scatter");
        _barrier = Fn<CommFn>("MPI_Barrier");
        _abort = Fn<AbortFn>("MPI_Abort");
        _finalize = Fn<VoidFn>("MPI_Finalize");
        _errorString = Fn<ErrorStringFn>("MPI_Error_string");

        Check(_initialized(out int already), "MPI_Initialized");
        if (already == 0)
        {
            // SERIALIZED: one thread at a time calls MPI (the trainer's thread, and the exit handler at the end).
            Check(_initThread(0, 0, ThreadSerialized, out _), "MPI_Init_thread");
            _ownsInit = true;
        }
        Check(_queryThread(out int level), "MPI_Query_thread");
        ThreadLevel = level;
        Check(_rank(CommWorld, out int rank), "MPI_Comm_rank");
        Check(_size(CommWorld, out int size), "MPI_Comm_size");
        Rank = rank;
        Size = size;
    }

    /// <summary>
    /// MPI_COMM_WORLD of this process, initialising MPI on first use (and finalising it at process exit). Throws
    /// <see cref="DllNotFoundException"/> naming the package to install when no MPI library is found.
    /// </summary>
    public static Mpi World
    {
        get
        {
            lock (Gate)
            {
                if (_world is not null) return _world;
                var (library, path) = Load();
                var world = new Mpi(library, path);
                // Without a launcher MPICH starts a "singleton": one rank training alone, which no one meant by asking
                // for distributed training. Refused, saying what to type (mpiexec -np 1 still gives one rank on purpose).
                if (world.Size == 1 && !StartedByLauncher())
                {
                    world.Shutdown();
                    throw new InvalidOperationException(
                        "this process was not started by an MPI launcher, so it would train alone as 1 rank. Start the ranks with one: " +
                        "mpiexec -np N advml train ... --distributed (or mpiexec -np N your program), N ranks on this machine; " +
                        "to train in one process, leave out distributed training (--distributed, AdversarialTrainingOptions.Distributed).");
                }
                _world = world;
                // A process that fails (non-zero exit code) aborts the job instead: MPI_Finalize waits for the other
                // ranks, which may be waiting for this one in a collective call.
                if (_world._ownsInit)
                    AppDomain.CurrentDomain.ProcessExit += (_, _) =>
                    {
                        if (Environment.ExitCode != 0 && _world.Size > 1) _world.Abort(Environment.ExitCode);
                        else _world.Shutdown();
                    };
                return _world;
            }
        }
    }

    /// <summary>
    /// This process's rank and the number of processes the MPI launcher that started it started (mpiexec -np N: N), read
    /// from the launcher's environment without initialising MPI; (0, 1) when no launcher started it or it does not say.
    /// </summary>
    public static (int Rank, int Size) Launched()
    {
        static int First(params string[] names)
        {
            foreach (var name in names)
                if (int.TryParse(Environment.GetEnvironmentVariable(name), out int n) && n >= 0) return n;
            return -1;
        }
        int size = First("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_NTASKS");
        int rank = First("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "MV2_COMM_WORLD_RANK", "SLURM_PROCID");
        return size > 1 ? (Math.Max(rank, 0), size) : (0, 1);
    }

    /// <summary>Whether an MPI launcher started this process: MPICH's and Intel MPI's Hydra, Open MPI, PMIx, Slurm, MVAPICH, Cray PALS set one of these.</summary>
    private static bool StartedByLauncher()
        => new[] { "PMI_RANK", "PMI_SIZE", "PMI_FD", "PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE", "SLURM_PROCID", "PALS_RANKID" }
            .Any(v => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(v)));

    private static (nint Library, string Path) Load()
    {
        var names = Environment.GetEnvironmentVariable("ADVML_MPI_LIBRARY") is { Length: > 0 } own ? new[] { own } : LibraryNames;
        foreach (var name in names)
            if (NativeLibrary.TryLoad(name, out nint handle)) return (handle, name);
        throw new DllNotFoundException(
            $"Distributed training needs an MPI library of the MPICH ABI; none of {string.Join(", ", names)} could be loaded. " +
            "Install MPICH (Debian/Ubuntu: apt-get install mpich; Fedora: dnf install mpich; or run build/setup.sh), or set ADVML_MPI_LIBRARY " +
            "to the library's path (Intel MPI, Cray MPICH and MVAPICH share MPICH's ABI).");
    }

    /// <summary>Element-wise sum (or <paramref name="op"/>) of <paramref name="buffer"/> over every rank, in place.</summary>
    public void AllreduceInPlace<T>(Span<T> buffer, int datatype, int op = OpSum) where T : unmanaged
    {
        // MPI counts are ints: reduce in chunks of at most 2^30 elements.
        const int chunk = 1 << 30;
        for (int offset = 0; offset < buffer.Length; offset += chunk)
        {
            var part = buffer.Slice(offset, Math.Min(chunk, buffer.Length - offset));
            Check(_allreduce(InPlace, ref MemoryMarshal.GetReference(MemoryMarshal.AsBytes(part)), part.Length, datatype, op, CommWorld), "MPI_Allreduce");
        }
    }

    /// <summary>
    /// Element-wise sum of <paramref name="buffer"/> over every rank, in place, with MPI_Iallreduce, then MPI_Test until
    /// done, waiting between tests as <paramref name="wait"/> says: the caller's thread gives the processor away while the
    /// other ranks catch up instead of spinning in a blocking call (on a machine with fewer cores than busy threads a
    /// spinning wait slows the ranks it waits for). <paramref name="buffer"/> must be native memory (a tensor's), which
    /// the garbage collector never moves.
    /// </summary>
    public void SumInPlaceNonBlocking(Span<float> buffer, AllreduceWait wait)
    {
        if (buffer.IsEmpty) return;
        Check(_iallreduce(InPlace, ref MemoryMarshal.GetReference(MemoryMarshal.AsBytes(buffer)), buffer.Length, Float, OpSum, CommWorld, out int request), "MPI_Iallreduce");
        if (wait == AllreduceWait.Block)
        {
            Check(_wait(ref request, StatusIgnore), "MPI_Wait");
            return;
        }
        for (int polls = 0; ; polls++)
        {
            Check(_test(ref request, out int done, StatusIgnore), "MPI_Test");
            if (done != 0) return;
            if (wait == AllreduceWait.Sleep && polls >= 16) Thread.Sleep(1);
            else Thread.Yield();
        }
    }

    /// <summary>Copies rank <paramref name="root"/>'s bytes into every other rank's <paramref name="buffer"/> (same length everywhere).</summary>
    public void Broadcast(Span<byte> buffer, int root = 0)
    {
        const int chunk = 1 << 30;
        for (int offset = 0; offset < buffer.Length; offset += chunk)
        {
            var part = buffer.Slice(offset, Math.Min(chunk, buffer.Length - offset));
            Check(_bcast(ref MemoryMarshal.GetReference(part), part.Length, Byte, root, CommWorld), "MPI_Bcast");
        }
    }

    /// <summary>
    /// MPI_Gather of bytes: every rank's <paramref name="mine"/> (the same length on every rank) lands in
    /// <paramref name="all"/> on rank <paramref name="root"/>, rank after rank (<c>Size x mine.Length</c> bytes, so every
    /// count fits MPI's int); other ranks pass an empty span.
    /// </summary>
    public void Gather(ReadOnlySpan<byte> mine, Span<byte> all, int root = 0)
    {
        if (Rank == root && all.Length != (long)mine.Length * Size) throw new ArgumentException("internal: the gather buffer holds every rank's part", nameof(all));
        Span<byte> none = stackalloc byte[1]; // a valid address for the buffers MPI ignores
        Check(_gather(ref MemoryMarshal.GetReference(mine.IsEmpty ? none : mine), mine.Length, Byte,
            ref MemoryMarshal.GetReference(all.IsEmpty ? none : all), mine.Length, Byte, root, CommWorld), "MPI_Gather");
    }

    /// <summary>
    /// MPI_Scatter of bytes, the inverse of <see cref="Gather"/>: rank <paramref name="root"/>'s <paramref name="all"/>
    /// (<c>Size x mine.Length</c> bytes, rank after rank) is cut into parts and rank r receives part r in
    /// <paramref name="mine"/>; other ranks pass an empty <paramref name="all"/>.
    /// </summary>
    public void Scatter(ReadOnlySpan<byte> all, Span<byte> mine, int root = 0)
    {
        if (Rank == root && all.Length != (long)mine.Length * Size) throw new ArgumentException("internal: the scatter buffer holds every rank's part", nameof(all));
        Span<byte> none = stackalloc byte[1];
        Check(_scatter(ref MemoryMarshal.GetReference(all.IsEmpty ? none : all), mine.Length, Byte,
            ref MemoryMarshal.GetReference(mine.IsEmpty ? none : mine), mine.Length, Byte, root, CommWorld), "MPI_Scatter");
    }

    /// <summary>Waits for every rank.</summary>
    public void Barrier() => Check(_barrier(CommWorld), "MPI_Barrier");

    /// <summary>Stops every rank of the job (the launcher kills them) with <paramref name="code"/>; does not return.</summary>
    public void Abort(int code)
    {
        _abort(CommWorld, code);
        Environment.Exit(code); // MPI_Abort should not return; if it does, this process still stops
    }

    /// <summary>MPI_Finalize, once, if this binding initialised MPI and it is not finalised yet.</summary>
    public void Shutdown()
    {
        lock (Gate)
        {
            if (!_ownsInit) return;
            _ownsInit = false;
            if (_finalized(out int done) == 0 && done == 0) _finalize();
        }
    }

    private void Check(int code, string call)
    {
        if (code == 0) return;
        var text = new byte[MaxErrorString];
        string message = _errorString(code, text, out int length) == 0 ? System.Text.Encoding.ASCII.GetString(text, 0, Math.Clamp(length, 0, text.Length)) : $"error {code}";
        throw new InvalidOperationException($"{call} failed: {message}");
    }
}

/// <summary>How a thread waits for a non-blocking allreduce (<see cref="Mpi.SumInPlaceNonBlocking"/>).</summary>
internal enum AllreduceWait
{
    /// <summary>MPI_Wait: MPICH polls without giving the processor away.</summary>
    Block,
    /// <summary>MPI_Test, then sched_yield, in a loop.</summary>
    Yield,
    /// <summary>MPI_Test with sched_yield for the first 16 tests, then 1 ms sleeps between tests.</summary>
    Sleep,
}
