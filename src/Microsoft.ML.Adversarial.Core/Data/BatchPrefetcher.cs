using System.Runtime.ExceptionServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>How many background workers read batches ahead of the model, and how many finished batches may wait.</summary>
public sealed class PrefetchOptions
{
    /// <summary>Threads that read (decode) batches; 0 reads each batch on the caller's thread when it is taken. Default 2.</summary>
    public int Workers { get; set; } = 2;

    /// <summary>
    /// Most batches read ahead at once (being read or waiting to be taken), at least 1. Memory held by the reader is at
    /// most about <c>Depth</c> batches of pixels, whatever the size of the data. Default 4.
    /// </summary>
    public int Depth { get; set; } = 4;

    /// <summary>Reads on the caller's thread, nothing ahead: for data already in memory.</summary>
    public static PrefetchOptions Synchronous => new() { Workers = 0, Depth = 1 };

    /// <summary>Throws, naming the setting, when a value is out of range.</summary>
    public void Validate()
    {
        if (Workers < 0 || Workers > 256)
            throw new ArgumentOutOfRangeException(nameof(Workers), Workers, "PrefetchOptions.Workers must lie in 0..256 (0 reads on the caller's thread).");
        if (Depth < 1 || Depth > 4096)
            throw new ArgumentOutOfRangeException(nameof(Depth), Depth, "PrefetchOptions.Depth must lie in 1..4096 batches.");
    }

    /// <inheritdoc/>
    public override string ToString() => Workers == 0 ? "synchronous" : $"{Workers} workers, depth {Depth}";
}

/// <summary>
/// Reads batches <c>first</c> .. <c>end - 1</c> of an <see cref="IImageSource"/> ahead of the model on background workers
/// into a bounded queue, and hands them out in order as tensors. Which rows batch i holds is the caller's function
/// (the trainer: a slice of the epoch's permutation, <see cref="EpochOrder"/>), so the batches are the same whatever
/// the number of workers or the timing: prefetching never changes a result. Workers only run the source's managed
/// reading code; tensors are made on the taking thread, inside its dispose scope. A batch that fails to read throws its
/// error (unchanged, naming the file) when it is taken, after every batch before it was handed out.
/// </summary>
public sealed class BatchPrefetcher : IDisposable
{
    private sealed class Slot
    {
        public float[]? Pixels;
        public long[]? Labels;
        public int Count;
        public Exception? Error;
    }

    private readonly IImageSource _source;
    private readonly Func<long, int[]> _rowsOf;
    private readonly long _end;
    private readonly int _imageSize;
    private readonly PrefetchOptions _options;
    private readonly object _lock = new();
    private readonly Dictionary<long, Slot> _ready = new();
    private readonly Dictionary<int, Stack<float[]>> _pool = new();
    private readonly SemaphoreSlim? _free;
    private readonly CancellationTokenSource _stop = new();
    private readonly Thread[] _workers;
    private long _nextToRead;
    private long _nextToTake;
    private int _maxAhead;
    private bool _disposed;

    /// <param name="source">The rows to read.</param>
    /// <param name="first">Index of the first batch (a resumed run starts at its step).</param>
    /// <param name="end">One past the last batch.</param>
    /// <param name="rowsOf">The rows of batch i; called from the workers, so it must be thread-safe.</param>
    /// <param name="options">Workers and depth; null: the defaults.</param>
    public BatchPrefetcher(IImageSource source, long first, long end, Func<long, int[]> rowsOf, PrefetchOptions? options = null)
    {
        _source = source ?? throw new ArgumentNullException(nameof(source));
        _rowsOf = rowsOf ?? throw new ArgumentNullException(nameof(rowsOf));
        if (first < 0 || end < first) throw new ArgumentOutOfRangeException(nameof(end), $"Batches {first}..{end} are not a range.");
        _options = options ?? new PrefetchOptions();
        _options.Validate();
        var (c, h, w) = source.ImageShape;
        _imageSize = checked(c * h * w);
        _nextToRead = _nextToTake = first;
        _end = end;
        _workers = new Thread[_options.Workers];
        if (_options.Workers == 0) return;
        _free = new SemaphoreSlim(_options.Depth, _options.Depth);
        for (int i = 0; i < _workers.Length; i++)
        {
            // Background threads: a process that ends without disposing the reader is not kept alive by them.
            _workers[i] = new Thread(Work) { IsBackground = true, Name = $"advml batch reader {i}" };
            _workers[i].Start();
        }
    }

    /// <summary>The most batches that were ever read ahead at once (read or being read, not yet taken); never above <see cref="PrefetchOptions.Depth"/>.</summary>
    public int MaxAhead { get { lock (_lock) return _maxAhead; } }

    /// <summary>Batches read ahead now (read or being read, not yet taken).</summary>
    public int Ahead { get { lock (_lock) return (int)(_nextToRead - _nextToTake); } }

    /// <summary>Pixel buffers allocated so far (reused between batches: flat however many batches are read).</summary>
    public int BuffersAllocated { get; private set; }

    /// <summary>
    /// Batch <paramref name="index"/> as tensors: images [n, C, H, W] (float32) and labels [n] (int64), on
    /// <paramref name="device"/> (CPU when null). Batches must be taken in order, each once. Throws the batch's read error.
    /// </summary>
    public (Tensor Images, Tensor Labels) Take(long index, Device? device = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Slot slot;
        lock (_lock)
        {
            if (index != _nextToTake || index >= _end)
                throw new InvalidOperationException($"Batch {index} was asked for; the reader hands out batches in order and the next is {_nextToTake} (the last is {_end - 1}).");
        }
        if (_options.Workers == 0)
        {
            slot = Read(index);
            lock (_lock) _nextToTake++;
        }
        else
        {
            lock (_lock)
            {
                while (!_ready.TryGetValue(index, out slot!)) Monitor.Wait(_lock);
                _ready.Remove(index);
                _nextToTake++;
            }
        }
        try
        {
            if (slot.Error is { } error) ExceptionDispatchInfo.Capture(error).Throw();
            return ToTensors(slot.Pixels!, slot.Labels!, slot.Count, _source.ImageShape, device);
        }
        finally
        {
            Return(slot.Pixels);
            _free?.Release();
        }
    }

    private void Work()
    {
        try
        {
            while (true)
            {
                _free!.Wait(_stop.Token);
                long index;
                lock (_lock)
                {
                    if (_nextToRead >= _end) { _free.Release(); return; }
                    index = _nextToRead++;
                    _maxAhead = Math.Max(_maxAhead, (int)(_nextToRead - _nextToTake));
                }
                var slot = Read(index);
                lock (_lock)
                {
                    _ready[index] = slot;
                    Monitor.PulseAll(_lock);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private Slot Read(long index)
    {
        var slot = new Slot();
        try
        {
            int[] rows = _rowsOf(index);
            slot.Count = rows.Length;
            slot.Pixels = Rent(rows.Length * _imageSize);
            _source.ReadPixels(rows, slot.Pixels);
            slot.Labels = new long[rows.Length];
            for (int i = 0; i < rows.Length; i++) slot.Labels[i] = _source.GetLabel(rows[i]);
        }
        catch (Exception e)
        {
            slot.Error = e;
        }
        return slot;
    }

    private float[] Rent(int length)
    {
        lock (_pool)
        {
            if (_pool.TryGetValue(length, out var stack) && stack.Count > 0) return stack.Pop();
            BuffersAllocated++;
        }
        return new float[length];
    }

    private void Return(float[]? buffer)
    {
        if (buffer is null) return;
        lock (_pool)
        {
            if (!_pool.TryGetValue(buffer.Length, out var stack)) _pool[buffer.Length] = stack = new Stack<float[]>();
            stack.Push(buffer);
        }
    }

    /// <summary>Tensors (copies) of a batch's pixels and labels; the arrays may be reused afterwards.</summary>
    internal static (Tensor Images, Tensor Labels) ToTensors(float[] pixels, long[] labels, int count, (int C, int H, int W) shape, Device? device)
    {
        // clone(): a tensor made from an array shares its memory, and the array goes back to the pool.
        using var shared = torch.tensor(pixels, new long[] { count, shape.C, shape.H, shape.W });
        using var sharedLabels = torch.tensor(labels);
        var images = shared.clone();
        var y = sharedLabels.clone();
        if (device is not null && device.type != DeviceType.CPU)
        {
            // to() makes new tensors; the CPU copies are freed now rather than left to the scope.
            using (images) using (y) return (images.to(device), y.to(device));
        }
        return (images, y);
    }

    /// <summary>Stops the workers (a batch being read is finished first) and drops the batches read ahead.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _stop.Cancel();
        foreach (var t in _workers) t?.Join();
        _free?.Dispose();
        _stop.Dispose();
        lock (_lock) _ready.Clear();
    }
}
