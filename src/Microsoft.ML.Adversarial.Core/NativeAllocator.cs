using System.Runtime.InteropServices;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Keeps freed native memory in the process on Linux (glibc). libtorch's CPU allocator takes every activation from
/// malloc, and glibc hands each large block (over 128 KB, adaptively up to 32 MB) back to the kernel on free and maps it
/// again on the next pass, so every forward and backward pass page-faults and zero-fills its activations afresh. With an
/// mmap threshold of 32 MB, a trim threshold of 1 GB and a top pad of 256 MB, blocks are reused instead: Inception v3
/// FGSM ran 7-12% faster here (docs/performance.md), at the cost of keeping the peak working set resident.
/// Skipped when the process sets glibc's own MALLOC_* variables, or ADVML_MALLOC_TUNING=0.
/// </summary>
internal static class NativeAllocator
{
    private const int TrimThreshold = -1, TopPad = -2, MmapThreshold = -3; // glibc's M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD

    /// <summary>
    /// The settings: glibc's environment variable for each (what a process not calling mallopt sets instead, e.g. the
    /// PyTorch side of the performance comparison), its mallopt parameter and the value.
    /// </summary>
    internal static readonly (string Variable, int Parameter, int Value)[] Settings =
    {
        ("MALLOC_MMAP_THRESHOLD_", MmapThreshold, 32 << 20),
        ("MALLOC_TRIM_THRESHOLD_", TrimThreshold, 1 << 30),
        ("MALLOC_TOP_PAD_", TopPad, 256 << 20),
    };
    private static readonly Lazy<bool> Tuned = new(Tune, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>True when the settings were applied (once per process).</summary>
    public static bool EnsureTuned() => Tuned.Value;

    private static bool Tune()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("ADVML_MALLOC_TUNING") == "0") return false;
        foreach (var name in Settings.Select(s => s.Variable).Append("MALLOC_ARENA_MAX"))
            if (Environment.GetEnvironmentVariable(name) is not null) return false;
        try
        {
            bool ok = true;
            foreach (var (_, parameter, value) in Settings) ok &= mallopt(parameter, value) == 1;
            return ok;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false; // not glibc (musl, say): nothing to tune
        }
    }

    [DllImport("libc.so.6", EntryPoint = "mallopt")]
    private static extern int mallopt(int param, int value);
}
