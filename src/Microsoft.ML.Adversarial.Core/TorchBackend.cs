using TorchSharp;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// The one place that first touches TorchSharp's native backend. Without one (a project that references the library,
/// or the managed <c>TorchSharp</c> package, but no <c>TorchSharp-cpu</c> / <c>TorchSharp-cuda-*</c> / <c>libtorch-*</c>
/// package) TorchSharp fails inside the <c>TorchSharp.torch</c> type initialiser with a long trace; the entry points
/// (the ML.NET catalogs, the trainer, the loaders) call <see cref="EnsureLoaded"/> first and get one
/// <see cref="InvalidOperationException"/> that names the package to add.
/// </summary>
public static class TorchBackend
{
    private static readonly Lazy<Exception?> Problem = new(Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>
    /// Loads the native backend once; throws <see cref="InvalidOperationException"/> naming the package to add when there
    /// is none. (Whether libtorch's oneDNN runs on this CPU is decided before the first convolution, where every network
    /// is prepared: <c>Models.ComputeModel</c> calls <c>Models.OneDnn.EnsureDecided</c>; the root folder does not depend
    /// on Models.)
    /// </summary>
    public static void EnsureLoaded() => EnsureLibrary();

    /// <summary>Loads the native backend once: what <c>Models.OneDnn</c> itself needs first.</summary>
    internal static void EnsureLibrary()
    {
        if (Problem.Value is { } e) throw new InvalidOperationException(MissingBackendMessage(e), e);
    }

    private static Exception? Probe()
    {
        try
        {
            // The first use of torch runs its type initialiser, which loads libtorch and LibTorchSharp.
            _ = torch.random.initial_seed();
            NativeAllocator.EnsureTuned();
            return null;
        }
        catch (Exception e) when (IsMissingBackend(e))
        {
            return e;
        }
    }

    /// <summary>
    /// True for the failure TorchSharp gives when no native backend can be loaded: a <see cref="TypeInitializationException"/>
    /// of <c>TorchSharp.torch</c> (or the <see cref="NotSupportedException"/>/<see cref="DllNotFoundException"/> inside it).
    /// </summary>
    public static bool IsMissingBackend(Exception e) => e switch
    {
        TypeInitializationException { TypeName: "TorchSharp.torch" } => true,
        NotSupportedException n => n.Message.Contains("LoadNativeBackend", StringComparison.Ordinal)
            || n.Message.Contains("doesn't contain a reference to", StringComparison.Ordinal),
        DllNotFoundException d => d.Message.Contains("LibTorchSharp", StringComparison.OrdinalIgnoreCase)
            || d.Message.Contains("libtorch", StringComparison.OrdinalIgnoreCase),
        _ => false,
    };

    /// <summary>The message for a missing backend: what happened, the package to add for this machine, and TorchSharp's first line.</summary>
    public static string MissingBackendMessage(Exception e)
    {
        var inner = e is TypeInitializationException { InnerException: { } i } ? i : e;
        string first = inner.Message.Split('\n', 2)[0].Trim();
        int sentence = first.IndexOf(". ", StringComparison.Ordinal);
        if (sentence > 0) first = first[..(sentence + 1)];
        string cuda = OperatingSystem.IsWindows() ? "TorchSharp-cuda-windows" : "TorchSharp-cuda-linux";
        return "TorchSharp's native backend (libtorch) could not be loaded, so no tensor work can run. The project references " +
            "Microsoft.ML.Adversarial (and the managed TorchSharp package) but no native backend: add a PackageReference to " +
            $"TorchSharp-cpu (CPU, any OS){(OperatingSystem.IsMacOS() ? "" : $", or {cuda} for an NVIDIA GPU")}, with the same version as TorchSharp " +
            $"({typeof(torch).Assembly.GetName().Version?.ToString(3) ?? "see the package"}), and build again. TorchSharp said: {first}";
    }
}
