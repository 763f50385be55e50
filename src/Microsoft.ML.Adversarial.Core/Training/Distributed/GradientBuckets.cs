using System.Diagnostics;
using System.Runtime.InteropServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training.Distributed;

/// <summary>Sums a float buffer over the ranks, in place (MPI_Allreduce, or a test's stand-in).</summary>
internal delegate void FloatAllreduce(Span<float> buffer);

/// <summary>
/// The gradient averaging of synchronous data-parallel training, in buckets. The parameters, in the reverse of their
/// registration order (the order a backward pass produces their gradients), are cut into buckets of about
/// <c>bucketMegabytes</c>; each bucket is one region of a flat float buffer kept between steps: the gradients, then one
/// presence slot per parameter (1 when this rank has its gradient). A bucket is summed over the ranks with one in-place
/// allreduce; after the last, every gradient that some rank has becomes the sum divided by the number of ranks, and a
/// parameter that no rank has a gradient for keeps none (the optimiser skips it, as in one process).
/// </summary>
/// <remarks>
/// With overlap, a communication thread makes the allreduces, in bucket order, while the backward pass goes on: a
/// bucket is copied into the buffer and handed to it as soon as <see cref="BackwardReadiness"/> reports every gradient
/// in it final. <see cref="Finish"/> (after the backward pass, before clipping and the optimiser step) hands over the
/// buckets not reported, waits for the thread and copies the averages back. Without overlap the same allreduces, of the
/// same regions in the same order, run in <see cref="Finish"/> on the caller's thread, so both give the same bits. MPI
/// is initialised at SERIALIZED: between <see cref="BeginStep"/> and the end of <see cref="Finish"/> only the
/// communication thread calls MPI, and the trainer makes its other MPI calls outside that span.
/// </remarks>
internal sealed class GradientBuckets : IDisposable
{
    /// <summary>Parameters [<paramref name="First"/>, <paramref name="End"/>) of the bucket order; floats [<paramref name="Offset"/>, + <paramref name="Length"/>) of the buffer, presence slots included.</summary>
    internal readonly record struct Bucket(int First, int End, long Offset, long Length);

    private readonly Parameter[] _parameters; // bucket order
    private readonly long[] _offsets;         // each parameter's first float in the buffer
    private readonly long[] _presence;        // each parameter's presence slot
    private readonly int[] _bucketOf;
    private readonly Bucket[] _buckets;
    private readonly int[] _missing;          // per bucket: parameters not yet reported final in this step
    private readonly bool[] _hadGradient;     // per parameter: whether it had a gradient when its bucket was copied
    private readonly Tensor _flat;
    private readonly int _ranks;
    private readonly FloatAllreduce _allreduce;
    private readonly Thread? _thread;
    private readonly object _gate = new();
    private readonly bool[] _launched;
    private int _next; // the bucket the communication thread reduces next
    private bool _inStep, _stop;
    private Exception? _error;
    private BackwardReadiness? _readiness;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly double[] _readyAt, _startAt, _endAt;

    /// <param name="parameters">The network's parameters in registration order (<c>model.parameters()</c>).</param>
    /// <param name="bucketMegabytes">Bucket size in MB (10^6 bytes of float32 gradients); 0: one bucket of everything.</param>
    /// <param name="ranks">Number of ranks (the divisor).</param>
    /// <param name="allreduce">The in-place sum over the ranks.</param>
    /// <param name="overlap">Reduce buckets on a communication thread during the backward pass.</param>
    public GradientBuckets(IEnumerable<Parameter> parameters, double bucketMegabytes, int ranks, FloatAllreduce allreduce, bool overlap)
    {
        if (!(bucketMegabytes >= 0) || double.IsInfinity(bucketMegabytes))
            throw new ArgumentOutOfRangeException(nameof(bucketMegabytes), bucketMegabytes, "The bucket size is a number of megabytes, 0 or more (0: one bucket).");
        _parameters = parameters.Where(p => p.requires_grad).Reverse().ToArray();
        _ranks = ranks;
        _allreduce = allreduce;
        long bucketFloats = bucketMegabytes == 0 ? long.MaxValue : Math.Max(1, (long)(bucketMegabytes * 1e6 / sizeof(float)));
        _offsets = new long[_parameters.Length];
        _presence = new long[_parameters.Length];
        _bucketOf = new int[_parameters.Length];
        var buckets = new List<Bucket>();
        long offset = 0;
        for (int first = 0; first < _parameters.Length;)
        {
            // Parameters until the bucket holds at least bucketFloats gradients (one larger parameter is a bucket alone).
            int end = first;
            long floats = 0;
            while (end < _parameters.Length && (end == first || floats < bucketFloats)) floats += _parameters[end++].numel();
            long start = offset;
            for (int i = first; i < end; i++)
            {
                _offsets[i] = offset;
                offset += _parameters[i].numel();
                _bucketOf[i] = buckets.Count;
            }
            for (int i = first; i < end; i++) _presence[i] = offset++;
            buckets.Add(new Bucket(first, end, start, offset - start));
            first = end;
        }
        if (offset > int.MaxValue / sizeof(float))
            throw new NotSupportedException($"The network's gradients ({offset:N0} floats) exceed the 2 GB the averaging buffer can hold.");
        _buckets = buckets.ToArray();
        _missing = new int[_buckets.Length];
        _launched = new bool[_buckets.Length];
        _hadGradient = new bool[_parameters.Length];
        _readyAt = new double[_buckets.Length];
        _startAt = new double[_buckets.Length];
        _endAt = new double[_buckets.Length];
        _flat = zeros(offset, ScalarType.Float32).DetachFromDisposeScope();
        if (overlap && _buckets.Length > 0)
        {
            _thread = new Thread(Communicate) { IsBackground = true, Name = "advml gradient allreduce" };
            _thread.Start();
        }
    }

    /// <summary>The buckets, in the order they are reduced.</summary>
    public IReadOnlyList<Bucket> Buckets => _buckets;

    /// <summary>The parameters in bucket order.</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Where parameter <paramref name="i"/> (bucket order) starts in the buffer.</summary>
    internal long OffsetOf(int i) => _offsets[i];

    /// <summary>Where parameter <paramref name="i"/>'s presence slot is in the buffer.</summary>
    internal long PresenceOf(int i) => _presence[i];

    /// <summary>Whether a communication thread reduces buckets during the backward pass.</summary>
    public bool Overlaps => _thread is not null;

    /// <summary>Called after bucket b is copied into the buffer and handed over (on the thread that handed it over); for tests.</summary>
    internal Action<int>? BucketLaunched { get; set; }

    /// <summary>Figures of the steps so far.</summary>
    public OverlapStatistics Statistics { get; } = new();

    /// <summary>Watches <paramref name="model"/>'s backward passes (forward pre-hooks) to start buckets early; with overlap only.</summary>
    public void Watch(nn.Module model)
    {
        if (_thread is null) return;
        _readiness?.Dispose();
        _readiness = new BackwardReadiness(model, _parameters, OnParameterReady);
    }

    /// <summary>
    /// Starts a step, before the training pass's forward pass: when <paramref name="watchBackward"/> (and overlapping),
    /// its markers are placed and buckets start as their gradients become final.
    /// </summary>
    public void BeginStep(bool watchBackward)
    {
        lock (_gate)
        {
            if (_inStep) throw new InvalidOperationException("internal: a gradient step began before the last one finished");
            Array.Clear(_launched);
            _next = 0;
            _inStep = true;
        }
        for (int b = 0; b < _buckets.Length; b++) _missing[b] = _buckets[b].End - _buckets[b].First;
        if (watchBackward && _readiness is not null) _readiness.Arm();
    }

    /// <summary>After the forward pass: later passes place no markers.</summary>
    public void EndForward() => _readiness?.EndForward();

    /// <summary>
    /// After the backward pass: reduces what is left, waits for every bucket, and replaces each gradient by its mean
    /// over the ranks. Every rank calls it once per step.
    /// </summary>
    public void Finish()
    {
        if (!_inStep) throw new InvalidOperationException("internal: Finish without BeginStep");
        double backwardEnd = Now;
        int early = _launched.Count(l => l);
        try
        {
            _readiness?.Stop();
            for (int b = 0; b < _buckets.Length; b++)
                if (!_launched[b]) Launch(b);
            // A gradient that appeared after its bucket was copied would be lost: the readiness rule was broken.
            for (int i = 0; i < _parameters.Length; i++)
                if (!_hadGradient[i] && _parameters[i].grad is not null)
                    throw new InvalidOperationException($"internal: parameter {i} of the bucket order got its gradient after its bucket was reduced");
            if (_thread is null)
            {
                for (int b = 0; b < _buckets.Length; b++)
                {
                    _startAt[b] = Now;
                    Reduce(b);
                    _endAt[b] = Now;
                }
            }
            else
            {
                lock (_gate)
                    while (_next < _buckets.Length) Monitor.Wait(_gate);
            }
        }
        finally
        {
            lock (_gate) _inStep = false;
        }
        if (_error is { } e)
        {
            _error = null;
            throw new InvalidOperationException($"The gradient allreduce failed: {e.Message}", e);
        }
        double waited = Now - backwardEnd;
        CopyBack();
        Statistics.Add(_buckets.Length, early, backwardEnd, waited, _readyAt, _startAt, _endAt);
    }

    private double Now => _clock.Elapsed.TotalMilliseconds;

    private void OnParameterReady(int i)
    {
        int b = _bucketOf[i];
        if (--_missing[b] == 0) Launch(b);
    }

    private Span<float> Floats() => MemoryMarshal.Cast<byte, float>(_flat.bytes);

    /// <summary>Copies bucket b's gradients (zeros where none) and presence into the buffer and hands it over.</summary>
    private void Launch(int b)
    {
        var bucket = _buckets[b];
        using (var scope = NewDisposeScope())
        using (var noGrad = no_grad())
        {
            for (int i = bucket.First; i < bucket.End; i++)
            {
                var p = _parameters[i];
                var slice = _flat.narrow(0, _offsets[i], p.numel());
                var g = p.grad;
                _hadGradient[i] = g is not null;
                if (g is null) slice.zero_();
                else slice.copy_(g.reshape(-1));
            }
        }
        var floats = Floats();
        for (int i = bucket.First; i < bucket.End; i++) floats[(int)_presence[i]] = _hadGradient[i] ? 1 : 0;
        double now = Now;
        lock (_gate)
        {
            _launched[b] = true;
            _readyAt[b] = now;
            Monitor.PulseAll(_gate);
        }
        BucketLaunched?.Invoke(b);
    }

    private void Reduce(int b)
    {
        var bucket = _buckets[b];
        _allreduce(Floats().Slice((int)bucket.Offset, (int)bucket.Length));
    }

    /// <summary>The communication thread: reduces bucket 0, 1, ... of each step as each is handed over.</summary>
    private void Communicate()
    {
        while (true)
        {
            int b;
            lock (_gate)
            {
                while (!_stop && !(_inStep && _next < _buckets.Length && _launched[_next])) Monitor.Wait(_gate);
                if (_stop) return;
                b = _next;
            }
            double start = Now;
            try
            {
                Reduce(b);
            }
            catch (Exception e)
            {
                lock (_gate)
                {
                    _error ??= e;
                    _next = _buckets.Length; // nothing more this step; Finish reports it
                    Monitor.PulseAll(_gate);
                }
                continue;
            }
            double end = Now;
            lock (_gate)
            {
                _startAt[b] = start;
                _endAt[b] = end;
                _next++;
                Monitor.PulseAll(_gate);
            }
        }
    }

    /// <summary>Each gradient some rank has becomes the sum divided by the number of ranks.</summary>
    private void CopyBack()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (_ranks != 1)
        {
            using var n = ((double)_ranks).ToScalar(); // held through the call (see HeldScalars)
            _flat.div_(n);
        }
        var floats = Floats();
        for (int i = 0; i < _parameters.Length; i++)
        {
            if (floats[(int)_presence[i]] == 0) continue; // no rank has a gradient for it: it keeps none
            var p = _parameters[i];
            var mean = _flat.narrow(0, _offsets[i], p.numel()).view(p.shape);
            if (p.grad is { } g) g.copy_(mean);
            else p.grad = mean.to(p.dtype, p.device, copy: true).DetachFromDisposeScope();
        }
    }

    /// <summary>Stops the communication thread and removes the hooks.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            _stop = true;
            Monitor.PulseAll(_gate);
        }
        // A thread inside an allreduce that another rank never joins (a rank failed and the job is being aborted) cannot
        // be stopped: it is a background thread, and the buffer it may still be reducing is left to the process's end.
        bool stopped = _thread is null || _thread.Join(TimeSpan.FromSeconds(1));
        _readiness?.Dispose();
        if (stopped) _flat.Dispose();
    }
}

/// <summary>
/// What the bucketed allreduce did over the steps so far: communication time (the allreduces), the part of it that ran
/// before the backward pass ended (hidden), the time <see cref="GradientBuckets.Finish"/> spent after the backward pass
/// (copies of the last buckets, the allreduces not yet done, waiting), and each bucket's allreduce time.
/// </summary>
internal sealed class OverlapStatistics
{
    private readonly List<double> _bucketMs = new();
    private readonly List<double> _queuedMs = new();

    /// <summary>Steps measured.</summary>
    public long Steps { get; private set; }
    /// <summary>Buckets reduced.</summary>
    public long Buckets { get; private set; }
    /// <summary>Buckets handed over before the backward pass ended.</summary>
    public long EarlyBuckets { get; private set; }
    /// <summary>Total time inside the allreduces.</summary>
    public double CommunicationMs { get; private set; }
    /// <summary>The part of <see cref="CommunicationMs"/> that ran while the backward pass was still running.</summary>
    public double HiddenMs { get; private set; }
    /// <summary>Total time from the end of the backward pass to the averaged gradients (copies and waiting included).</summary>
    public double FinishMs { get; private set; }
    /// <summary>Hidden share of the communication time.</summary>
    public double OverlapFraction => CommunicationMs > 0 ? HiddenMs / CommunicationMs : 0;
    /// <summary>Each bucket's allreduce time, in the order reduced.</summary>
    public IReadOnlyList<double> BucketMs => _bucketMs;
    /// <summary>Each bucket's time from being handed over to the end of its allreduce.</summary>
    public IReadOnlyList<double> QueuedMs => _queuedMs;

    internal void Add(int buckets, int early, double backwardEnd, double finishMs, double[] readyAt, double[] startAt, double[] endAt)
    {
        Steps++;
        Buckets += buckets;
        EarlyBuckets += early;
        FinishMs += finishMs;
        for (int b = 0; b < buckets; b++)
        {
            CommunicationMs += endAt[b] - startAt[b];
            HiddenMs += Math.Max(0, Math.Min(endAt[b], backwardEnd) - startAt[b]);
            _bucketMs.Add(endAt[b] - startAt[b]);
            _queuedMs.Add(endAt[b] - readyAt[b]);
        }
    }

    /// <summary>Forgets the steps so far (after warm-up).</summary>
    public void Reset()
    {
        Steps = Buckets = EarlyBuckets = 0;
        CommunicationMs = HiddenMs = FinishMs = 0;
        _bucketMs.Clear();
        _queuedMs.Clear();
    }
}
