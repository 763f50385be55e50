using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// The speed options of a <c>compare</c> run: channels-last memory format and bf16 autocast. The PyTorch side gets them
/// as benchmark_pytorch.py flags (<see cref="PythonArguments"/>); our side's <see cref="Workload"/> does not take them yet.
/// </summary>
internal sealed record SpeedOptions(bool ChannelsLast, string? Autocast, bool Fuse = false)
{
    public static readonly string[] AutocastTypes = { "bf16" };

    /// <summary>Reads <c>--channels-last</c> and <c>--autocast TYPE</c> (empty: none); throws naming the option on a bad type.</summary>
    public static SpeedOptions Parse(bool channelsLast, string autocast, bool fuse = false)
    {
        if (autocast.Length > 0 && !AutocastTypes.Contains(autocast))
            throw new ArgumentException($"--autocast '{autocast}' is not supported: use --autocast {string.Join(" or ", AutocastTypes)}, or leave it out for fp32.");
        return new SpeedOptions(channelsLast, autocast.Length > 0 ? autocast : null, fuse);
    }

    public IEnumerable<string> PythonArguments()
    {
        if (ChannelsLast) yield return "--channels-last";
        if (Fuse) yield return "--fuse";
        if (Autocast is not null)
        {
            yield return "--autocast";
            yield return Autocast;
        }
    }

    public override string ToString() =>
        (ChannelsLast ? "channels-last" : "contiguous (NCHW)") + (Fuse ? ", BatchNorm fused for attacks (torch.fx)" : "") + ", " +
        (Autocast is null ? "fp32" : $"autocast {Autocast} (fp32 master weights)");
}

/// <summary>
/// One PyTorch to compare against: a Python (Debian's /usr/bin/python3, or a wrapper such as the Debian 13 chroot's from
/// build/pytorch-trixie.sh) running test/reference/benchmark_pytorch.py, and what that PyTorch runs on, read once with
/// <c>--info</c>. A PyTorch on the reference (netlib) BLAS is no fair anchor: <see cref="Ratio"/> refuses it.
/// </summary>
internal sealed record PyTorchSide(string Python, string Torch, string Blas, string? BlasLibrary, bool ReferenceBlas, string CpuCapability, int Threads)
{
    /// <summary>The glibc malloc settings NativeAllocator applies in our process, as environment variables.</summary>
    private static readonly (string Name, string Value)[] Malloc =
        NativeAllocator.Settings.Select(s => (s.Variable, s.Value.ToString(CultureInfo.InvariantCulture))).ToArray();

    /// <summary>The settings as environment assignments, for the header.</summary>
    public static string MallocSettings => string.Join(" ", Malloc.Select(m => $"{m.Name}={m.Value}"));

    public const string DefaultPython = "/usr/bin/python3";
    public const string Fix = "bash build/setup.sh --with-pytorch";

    private static string Script => Path.Combine(Harness.RepoRoot(), "test", "reference", "benchmark_pytorch.py");

    public static PyTorchSide Probe(string python, int threads)
    {
        var root = RunScript(python, new[] { "--info", "--threads", Invariant(threads) }, threads, "--info");
        var blas = root.GetProperty("blas");
        return new PyTorchSide(python, root.GetProperty("torch").GetString()!, blas.GetProperty("name").GetString()!,
            blas.GetProperty("library").ValueKind == JsonValueKind.String ? blas.GetProperty("library").GetString() : null,
            blas.GetProperty("reference").GetBoolean(), root.GetProperty("cpu_capability").GetString()!, root.GetProperty("threads").GetInt32());
    }

    /// <summary>Column title in the comparison table.</summary>
    public string Label => $"PyTorch {Torch}";

    /// <summary>The header line: version, BLAS, CPU kernels and threads this PyTorch runs on.</summary>
    public string Describe() =>
        $"{Label} ({Python}): BLAS {Blas}{(BlasLibrary is null ? "" : $" [{BlasLibrary}]")}, CPU capability {CpuCapability}, {Threads} threads.";

    /// <summary>Why no ratio is reported against this PyTorch, and the fix; null when it is a fair anchor.</summary>
    public string? Refusal => ReferenceBlas
        ? $"{Label} ({Python}) runs on the reference BLAS ({BlasLibrary ?? Blas}): its matrix products are ~25x slower than an " +
          $"optimised BLAS, so no ratio is reported against it. Fix: `{Fix}` (installs OpenBLAS for Debian's python3-torch); " +
          "for another Python, install an optimised BLAS (e.g. libopenblas0-pthread) where it runs."
        : null;

    /// <summary>Ours / PyTorch, or "n/a (reference BLAS)" against an unfair anchor.</summary>
    public string Ratio(double oursRate, double theirRate) =>
        ReferenceBlas ? "n/a (reference BLAS)" : (oursRate / theirRate).ToString("F2", CultureInfo.InvariantCulture);

    /// <summary>Seconds of each timed repetition of the plan's workload, with the same batch, warm-up, repetitions and threads as ours.</summary>
    public List<double> Run(string workload, string network, int batch, int warmup, int reps, int threads, SpeedOptions options)
    {
        var args = new[] { workload, network, Invariant(batch), Invariant(warmup), Invariant(reps), Invariant(threads) }.Concat(options.PythonArguments());
        var root = RunScript(Python, args, threads, $"{workload}, {network}");
        return root.GetProperty("seconds").EnumerateArray().Select(e => e.GetDouble()).ToList();
    }

    private static JsonElement RunScript(string python, IEnumerable<string> args, int threads, string what)
    {
        var psi = new ProcessStartInfo(python) { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Script);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["OMP_NUM_THREADS"] = Invariant(threads);   // torch's OpenMP pool and OpenBLAS's threads
        // The allocator settings our process applies to itself (NativeAllocator), so neither side pays for page faults the other does not.
        foreach (var (name, value) in Malloc) psi.Environment[name] = value;
        Process p;
        try
        {
            p = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"--python '{python}' could not be started ({e.Message}). Give a Python with torch and torchvision " +
                $"(default {DefaultPython}: `{Fix}`; Debian 13's PyTorch: `sudo bash build/pytorch-trixie.sh`, then --python /var/lib/advml/trixie/python3).", e);
        }
        using (p)
        {
            var err = p.StandardError.ReadToEndAsync();
            string stdout = p.StandardOutput.ReadToEnd();
            p.WaitForExit();
            if (p.ExitCode != 0)
                throw new InvalidOperationException($"PyTorch side failed ({what}, --python {python}, exit code {p.ExitCode}): {err.Result}" +
                    $"Install python3-torch python3-torchvision ({Fix}).");
            using var json = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
            return json.RootElement.Clone();
        }
    }

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);
}
