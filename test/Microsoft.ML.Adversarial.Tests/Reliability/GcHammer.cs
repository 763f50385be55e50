namespace Microsoft.ML.Adversarial.Tests.Reliability;

/// <summary>
/// Forces full garbage collections and runs pending finalizers from another thread, as fast as it can, until disposed.
/// A GC started by another thread can run while the test thread is inside a native libtorch call (threads in native
/// code do not stop for the GC), and the finalizer thread then frees whatever managed wrapper the GC found
/// unreachable. This is how the CLI's progress-bar thread turned TorchSharp's temporary Scalars into garbage
/// mid-call (issue 13); the hammer makes that timing happen thousands of times a second instead of once a run.
/// </summary>
internal sealed class GcHammer : IDisposable
{
    private readonly Thread _thread;
    private volatile bool _stop;
    private long _collections;

    public GcHammer()
    {
        _thread = new Thread(() =>
        {
            while (!_stop)
            {
                // Some garbage of its own too, so gen0 budgets run out on this thread as well.
                GC.KeepAlive(new byte[4096]);
                GC.Collect();
                GC.WaitForPendingFinalizers();
                Interlocked.Increment(ref _collections);
            }
        }) { IsBackground = true, Name = "gc-hammer" };
        _thread.Start();
    }

    /// <summary>Full collections forced so far (a test checks that the pressure really happened).</summary>
    public long Collections => Interlocked.Read(ref _collections);

    public void Dispose()
    {
        _stop = true;
        _thread.Join();
    }
}
