using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>What <see cref="OneDnn.Decide"/> chose for a CPU and an <c>ADVML_ONEDNN</c> value.</summary>
/// <param name="Enabled">True: libtorch's oneDNN kernels stay on.</param>
/// <param name="Reason">Why, in words.</param>
/// <param name="Warning">The one warning line to give (oneDNN switched off for this CPU, or a value not understood); null for none.</param>
public sealed record OneDnnDecision(bool Enabled, string Reason, string? Warning);

/// <summary>
/// libtorch's oneDNN (MKL-DNN) kernels, on or off for the whole process: PyTorch's <c>torch.backends.mkldnn.enabled</c>,
/// which TorchSharp 0.107 does not expose (libtorch's own <c>at::Context::setUserEnabledMkldnn</c> is called). Off,
/// libtorch runs convolutions with its own kernels (im2col and BLAS): the same results within fp32 rounding, slower.
/// <para>
/// Before the first convolution (every <see cref="ComputeModel"/>, which attacks, evaluators, the trainer and the ML.NET scorer prepare) the library
/// reads the CPU's data-cache sizes the way oneDNN does (<see cref="CpuCaches"/>); where they are missing or zero, as on
/// virtual machines that hide them, oneDNN's blocking arithmetic divides by zero and the process dies with SIGFPE, so
/// oneDNN (and NNPACK, which sizes its tiles from the same figures) is switched off and one warning line says so.
/// The environment variable <c>ADVML_ONEDNN=on|off</c> overrides the decision either way.
/// </para>
/// </summary>
public static class OneDnn
{
    /// <summary>The environment variable that overrides the decision: <c>on</c> or <c>off</c> (anything else: decided from the CPU).</summary>
    public const string EnvironmentVariable = "ADVML_ONEDNN";

    private delegate IntPtr GlobalContext();
    private delegate void SetFlag(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool on);
    [return: MarshalAs(UnmanagedType.U1)]
    private delegate bool GetFlag(IntPtr context);

    private sealed record Exports(GlobalContext Context, GetFlag GetMkldnn, SetFlag SetMkldnn, GetFlag? GetNnpack, SetFlag? SetNnpack);

    // Itanium (Linux, macOS) and MSVC (Windows) names of at::globalContext(), at::Context::userEnabledMkldnn() const,
    // at::Context::setUserEnabledMkldnn(bool) and the NNPACK pair.
    private static readonly string[][] Names =
    {
        new[] { "_ZN2at13globalContextEv", "?globalContext@at@@YAAEAVContext@1@XZ" },
        new[] { "_ZNK2at7Context17userEnabledMkldnnEv", "?userEnabledMkldnn@Context@at@@QEBA_NXZ" },
        new[] { "_ZN2at7Context20setUserEnabledMkldnnEb", "?setUserEnabledMkldnn@Context@at@@QEAAX_N@Z" },
        new[] { "_ZNK2at7Context17userEnabledNNPACKEv", "?userEnabledNNPACK@Context@at@@QEBA_NXZ" },
        new[] { "_ZN2at7Context20setUserEnabledNNPACKEb", "?setUserEnabledNNPACK@Context@at@@QEAAX_N@Z" },
    };

    private static readonly Lazy<(Exports? Exports, string? Problem)> Bound = new(Bind, LazyThreadSafetyMode.ExecutionAndPublication);
    private static readonly Lazy<OneDnnDecision> Applied = new(ApplyForThisCpu, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>True when this process can switch oneDNN (libtorch's entry points were found).</summary>
    public static bool CanSwitch => Bound.Value.Exports is not null;

    /// <summary>Why oneDNN cannot be switched here (null when it can): the library or entry point not found.</summary>
    public static string? SwitchProblem => Bound.Value.Problem;

    /// <summary>
    /// Whether libtorch's oneDNN kernels are on for this process. Setting it throws <see cref="NotSupportedException"/>
    /// (naming what is missing) where <see cref="CanSwitch"/> is false; reading it there gives true (libtorch's default).
    /// </summary>
    public static bool Enabled
    {
        get => Bound.Value.Exports is not { } e || e.GetMkldnn(e.Context());
        set
        {
            var e = Bound.Value.Exports ?? throw new NotSupportedException($"libtorch's oneDNN cannot be switched {(value ? "on" : "off")} in this process: {SwitchProblem}");
            e.SetMkldnn(e.Context(), value);
        }
    }

    /// <summary>
    /// Switches oneDNN off for the rest of the process, and NNPACK with it (it sizes its tiles from the same cache figures):
    /// what a crash of the first pass with oneDNN on calls for. Throws <see cref="NotSupportedException"/> where
    /// <see cref="CanSwitch"/> is false.
    /// </summary>
    public static void SwitchOff()
    {
        Enabled = false;
        NnpackEnabled = false;
    }

    /// <summary>Whether libtorch's NNPACK convolutions are on (null where they cannot be read).</summary>
    internal static bool? NnpackEnabled
    {
        get => Bound.Value.Exports is { GetNnpack: { } get } e ? get(e.Context()) : null;
        set
        {
            if (value is bool on && Bound.Value.Exports is { SetNnpack: { } set } e) set(e.Context(), on);
        }
    }

    /// <summary>
    /// What this process decided (once, before its first convolution): oneDNN on, or off for a CPU that reports no or
    /// zero cache sizes, or as <c>ADVML_ONEDNN</c> says. Applies the decision the first time it is read.
    /// </summary>
    public static OneDnnDecision Decision => Applied.Value;

    /// <summary>Applies the decision for this CPU once per process (cheap afterwards).</summary>
    public static void EnsureDecided() => _ = Applied.Value;

    /// <summary>
    /// The decision for a CPU's cache report and an <c>ADVML_ONEDNN</c> value (null: unset). Pure: tests give it CPUs
    /// they do not have.
    /// </summary>
    public static OneDnnDecision Decide(CpuCacheReport report, string? setting)
    {
        ArgumentNullException.ThrowIfNull(report);
        string value = (setting ?? "").Trim().ToLowerInvariant();
        switch (value)
        {
            case "on" or "1" or "true":
                return new(true, $"{EnvironmentVariable}={setting}", null);
            case "off" or "0" or "false":
                return new(false, $"{EnvironmentVariable}={setting}", null);
        }
        string? unknown = value is "" or "auto" ? null
            : $"WARNING: {EnvironmentVariable}='{setting}' is not on, off or auto; deciding from the CPU instead.";
        if (!report.IsSuspicious) return new(true, "the CPU reports its data-cache sizes", unknown);
        string warning = $"WARNING: oneDNN switched off: {report.Cpu} reports no usable data-cache sizes ({report.Problem}; " +
            $"CPUID: {CpuCacheReport.Describe(report.Cpuid)}{(report.Sysfs is { } s ? $"; Linux: {CpuCacheReport.Describe(s)}" : "")}), " +
            "and libtorch's oneDNN divides by these figures (such CPUs, usually virtual machines, end with SIGFPE, exit 136). " +
            $"Convolutions run libtorch's own kernels: same results, slower. {EnvironmentVariable}=on in the environment keeps oneDNN on.";
        return new(false, $"the CPU reports no usable data-cache sizes ({report.Problem})", unknown is null ? warning : unknown + " " + warning);
    }

    /// <summary>
    /// Applies <paramref name="decision"/>: oneDNN (and NNPACK, when switching off) as it says; its warning goes to
    /// <paramref name="warn"/>. Where oneDNN cannot be switched, an off decision becomes a warning naming why.
    /// </summary>
    internal static OneDnnDecision Apply(OneDnnDecision decision, Action<string> warn)
    {
        if (decision.Warning is { } w && (decision.Enabled || CanSwitch)) warn(w);
        if (decision.Enabled == Enabled) return decision;
        if (!CanSwitch)
        {
            warn($"WARNING: oneDNN should be off ({decision.Reason}) but cannot be switched in this process: {SwitchProblem}. " +
                 "If the first convolution ends the process with SIGFPE, run on another machine or report the CPU (docs/performance.md).");
            return decision with { Enabled = true };
        }
        if (decision.Enabled) Enabled = true;
        else SwitchOff();
        return decision;
    }

    private static OneDnnDecision ApplyForThisCpu()
    {
        TorchBackend.EnsureLibrary();
        return Apply(Decide(CpuCaches.Probe(), Environment.GetEnvironmentVariable(EnvironmentVariable)), FastPathCheck.WarnLine);
    }

    private static (Exports?, string?) Bind()
    {
        TorchBackend.EnsureLibrary(); // TorchSharp loads libtorch: its exports are found in the loaded library
        IntPtr library = IntPtr.Zero;
        foreach (var candidate in LibraryCandidates())
            if (NativeLibrary.TryLoad(candidate, out library)) break;
        if (library == IntPtr.Zero) return (null, "libtorch_cpu is not loaded in this process");
        IntPtr Find(string[] names)
        {
            foreach (var name in names)
                if (NativeLibrary.TryGetExport(library, name, out var address)) return address;
            return IntPtr.Zero;
        }
        var addresses = Names.Select(Find).ToArray();
        if (addresses[0] == IntPtr.Zero || addresses[1] == IntPtr.Zero || addresses[2] == IntPtr.Zero)
            return (null, $"libtorch exports no {(addresses[0] == IntPtr.Zero ? "at::globalContext()" : "at::Context::setUserEnabledMkldnn(bool)")} " +
                $"(EntryPointNotFound: looked for {string.Join(" / ", Names[addresses[0] == IntPtr.Zero ? 0 : 2])})");
        T? Function<T>(IntPtr p) where T : Delegate => p == IntPtr.Zero ? null : Marshal.GetDelegateForFunctionPointer<T>(p);
        return (new Exports(Function<GlobalContext>(addresses[0])!, Function<GetFlag>(addresses[1])!, Function<SetFlag>(addresses[2])!,
            Function<GetFlag>(addresses[3]), Function<SetFlag>(addresses[4])), null);
    }

    /// <summary>libtorch's CPU library: as loaded in this process (its path), else by name.</summary>
    private static IEnumerable<string> LibraryCandidates()
    {
        string[] names = OperatingSystem.IsWindows() ? new[] { "torch_cpu.dll" } : OperatingSystem.IsMacOS() ? new[] { "libtorch_cpu.dylib" } : new[] { "libtorch_cpu.so" };
        var loaded = new List<string>();
        try
        {
            using var self = Process.GetCurrentProcess();
            foreach (ProcessModule m in self.Modules)
                if (names.Contains(Path.GetFileName(m.FileName), StringComparer.OrdinalIgnoreCase)) loaded.Add(m.FileName);
        }
        catch (Exception e) when (e is InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException) { }
        return loaded.Concat(names);
    }
}
