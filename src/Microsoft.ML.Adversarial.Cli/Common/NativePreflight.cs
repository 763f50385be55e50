using System.CommandLine;
using System.Diagnostics;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>
/// The crash that cannot be avoided in-process, turned into a clear error (issue 27): where libtorch's kernels kill the
/// process (SIGFPE from oneDNN's cache-size arithmetic on a CPU that reports none, SIGSEGV, SIGABRT), no handler runs and
/// the user sees "Floating point exception (core dumped)". So, when the CPU is suspicious (<see cref="CpuCaches"/>) or
/// the user asks (<c>ADVML_PREFLIGHT=always</c>), the first forward and backward pass of the user's network at their
/// batch shape runs first in a child process (<c>advml preflight</c>). If the child dies by a signal with oneDNN on,
/// it runs again with oneDNN off and, if that completes, this run continues with oneDNN off and says so; if it still
/// dies, the command stops with one line naming the network, the CPU, what died and what to try.
/// On other CPUs nothing runs (no child process): the check costs nothing there.
/// </summary>
internal static class NativePreflight
{
    /// <summary><c>always</c>: run the check whatever the CPU; <c>never</c>: never; anything else: on suspicious CPUs only.</summary>
    public const string EnvironmentVariable = "ADVML_PREFLIGHT";

    /// <summary>Test-only fault injection in the child: <c>sigfpe</c> (always) or <c>sigfpe-with-onednn</c> (only while oneDNN is on).</summary>
    public const string FaultVariable = "ADVML_TEST_INJECT_FAULT";

    /// <summary>One child run: its exit code, the signal that ended it (null when it exited), and its last lines.</summary>
    internal sealed record ChildRun(int ExitCode, string? Signal, string Output)
    {
        public bool Completed => ExitCode == 0;
    }

    /// <summary>
    /// Runs the check for a model file when this CPU or the user asks for it; switches oneDNN off when only that lets the
    /// pass complete; throws <see cref="InvalidOperationException"/> (one line) when the pass dies either way.
    /// </summary>
    public static void Check(ParseResult p, string modelPath, ModelDescription description, int rows, torch.Device device)
    {
        if (device.type != DeviceType.CPU || OnnxModels.IsOnnx(modelPath)) return;
        string mode = (Environment.GetEnvironmentVariable(EnvironmentVariable) ?? "").Trim().ToLowerInvariant();
        if (mode == "never") return;
        var decision = OneDnn.Decision; // applied before anything else runs a convolution in this process
        var cpu = CpuCaches.Probe();
        if (mode != "always" && !cpu.IsSuspicious) return;

        int batch = Math.Max(1, Math.Min(p.GetValue(CommonOptions.BatchSize), Math.Max(1, rows)));
        string shape = $"[{batch}, {description.Channels}, {description.Height}, {description.Width}]";
        string network = $"{description.Spec.Architecture} ('{Path.GetFileName(modelPath)}')";
        Console.WriteLine($"Checking that {network} runs at batch {shape} on this CPU in a separate process first " +
            $"({(mode == "always" ? $"{EnvironmentVariable}=always" : "the CPU reports no usable cache sizes")}; oneDNN {(OneDnn.Enabled ? "on" : "off")}).");
        string[] args = { "preflight", "--model", Path.GetFullPath(modelPath), "--batch-size", batch.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--precision", p.GetValue(CommonOptions.Precision)!, "--compute", p.GetValue(CommonOptions.ComputePath)! };

        bool onednn = OneDnn.Enabled;
        var first = RunChild(args, onednn);
        if (first.Completed || first.Signal is null) return; // an ordinary error: this run meets it itself and reports it
        if (onednn && OneDnn.CanSwitch)
        {
            var second = RunChild(args, onednn: false);
            if (second.Completed)
            {
                OneDnn.SwitchOff();
                Console.Error.WriteLine($"WARNING: the first forward and backward pass of {network} at {shape} died with {first.Signal} (exit {first.ExitCode}) " +
                    $"in a separate process with oneDNN on, on {cpu.Cpu}; with oneDNN off it completes, so this run uses libtorch's own kernels " +
                    $"(same results, slower). {OneDnn.EnvironmentVariable}=off in the environment skips this check next time.");
                return;
            }
            if (second.Signal is null) return;
            throw new InvalidOperationException(Fatal(network, shape, cpu, second.ExitCode == first.ExitCode
                ? $"died with {first.Signal} (exit {first.ExitCode}) with oneDNN on, and again with oneDNN off"
                : $"died with {first.Signal} (exit {first.ExitCode}) with oneDNN on, and with {second.Signal} (exit {second.ExitCode}) with oneDNN off"));
        }
        throw new InvalidOperationException(Fatal(network, shape, cpu, $"died with {first.Signal} (exit {first.ExitCode}) with oneDNN {(onednn ? "on (it cannot be switched off here: " + OneDnn.SwitchProblem + ")" : $"off ({decision.Reason})")}"));
    }

    private static string Fatal(string network, string shape, CpuCacheReport cpu, string what) =>
        $"{network} cannot run on this CPU ({cpu.Cpu}; caches: {CpuCacheReport.Describe(cpu.Cpuid)}{(cpu.Problem is { } problem ? $", {problem}" : "")}): " +
        $"its first forward and backward pass at batch {shape}, run in a separate process before the real work, {what}. " +
        "libtorch's CPU kernels crash here for this network; try a smaller --batch-size, --compute plain, --device cuda or another machine, " +
        "and report this line with `lscpu` (docs/performance.md, \"oneDNN and CPUs that report no cache sizes\").";

    /// <summary>Runs <c>advml preflight</c> with oneDNN as given; how it ended.</summary>
    internal static ChildRun RunChild(IReadOnlyList<string> args, bool onednn)
    {
        string host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot find the advml executable to run the check in a separate process");
        var psi = new ProcessStartInfo(host) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (string.Equals(Path.GetFileNameWithoutExtension(host), "dotnet", StringComparison.OrdinalIgnoreCase))
            psi.ArgumentList.Add(typeof(NativePreflight).Assembly.Location); // `dotnet advml.dll`; an apphost or single file runs itself
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment[OneDnn.EnvironmentVariable] = onednn ? "on" : "off";
        psi.Environment[EnvironmentVariable] = "never";
        using var child = Process.Start(psi) ?? throw new InvalidOperationException($"could not start '{host}' for the check");
        var err = child.StandardError.ReadToEndAsync();
        string output = child.StandardOutput.ReadToEnd();
        child.WaitForExit();
        var tail = string.Join(" | ", (output + err.Result).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(3));
        return new ChildRun(child.ExitCode, SignalName(child.ExitCode), tail);
    }

    /// <summary>The signal (Unix: exit 128 + N) or Windows exception a child died of, by name; null for an ordinary exit.</summary>
    internal static string? SignalName(int exitCode)
    {
        if (OperatingSystem.IsWindows())
            return unchecked((uint)exitCode) switch
            {
                0xC0000094 => "an integer division by zero (STATUS_INTEGER_DIVIDE_BY_ZERO)",
                0xC0000005 => "an access violation",
                0xC000001D => "an illegal instruction",
                0xC0000409 => "a fail-fast abort",
                0xC00000FD => "a stack overflow",
                _ => null,
            };
        return (exitCode - 128) switch
        {
            8 => "SIGFPE (arithmetic fault)",
            11 => "SIGSEGV (invalid memory access)",
            6 => "SIGABRT (abort)",
            4 => "SIGILL (illegal instruction)",
            7 => "SIGBUS (bus error)",
            _ => null,
        };
    }
}
