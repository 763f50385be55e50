using System.Diagnostics;
using System.Reflection;
using System.Runtime.InteropServices;
using Microsoft.ML.Adversarial.Training;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>
/// One line naming a rank that died. The launcher (MPICH's Hydra) kills every other rank with SIGKILL within
/// milliseconds of one's death and prints a banner naming a PID, so no rank can say which one died. Each rank of
/// <c>advml train --distributed</c> therefore runs as a small supervisor process (the one the launcher started) with the
/// trainer as its child, which inherits the launcher's environment (the MPI job is the children's). When the trainer dies
/// by a signal (kill -9, the out-of-memory killer, a native crash), the supervisor prints which rank died, by which
/// signal, which checkpoint is intact and how to resume, and exits 1. The trainer dies with its supervisor
/// (PR_SET_PDEATHSIG), so a job the launcher stops leaves no trainer behind; SIGINT and SIGTERM are passed on to it.
/// </summary>
internal static class RankSupervisor
{
    /// <summary>Set in the trainer's environment.</summary>
    public const string ChildVariable = "ADVML_RANK_CHILD";

    /// <summary>How long a rank whose trainer died by a signal other than a kill waits before reporting.</summary>
    private static readonly TimeSpan ConsequenceGrace = TimeSpan.FromSeconds(3);

    /// <summary>ADVML_RANK_SUPERVISOR=0 runs each rank without a supervisor.</summary>
    public const string OptOutVariable = "ADVML_RANK_SUPERVISOR";

    /// <summary>
    /// Null when this process trains (not started by a launcher with more than one rank, not Linux, switched off, or the
    /// trainer itself); else the rank's exit code, after the trainer ran as this process's child.
    /// </summary>
    public static int? Supervise(string? checkpointFolder)
    {
        if (Environment.GetEnvironmentVariable(ChildVariable) == "1")
        {
            DieWithParent();
            return null;
        }
        var (rank, size) = DistributedTrainingOptions.Launched;
        if (size <= 1 || !OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable(OptOutVariable) == "0") return null;
        string host = Environment.ProcessPath ?? throw new CliException("cannot find this process's executable to start the rank's trainer.");
        var psi = new ProcessStartInfo(host) { UseShellExecute = false };
        // `dotnet advml.dll ...`: the host is dotnet and the tool's assembly comes first; the apphost `advml` is the tool itself.
        string entry = Assembly.GetEntryAssembly()?.Location ?? "";
        if (entry.Length > 0 && !string.Equals(Path.GetFileNameWithoutExtension(host), Path.GetFileNameWithoutExtension(entry), StringComparison.Ordinal))
            psi.ArgumentList.Add(entry);
        foreach (var a in Environment.GetCommandLineArgs().Skip(1)) psi.ArgumentList.Add(a);
        psi.Environment[ChildVariable] = "1";
        using var child = Process.Start(psi) ?? throw new CliException("could not start the rank's trainer process.");
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => Forward(c, child, 2));
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => Forward(c, child, 15));
        child.WaitForExit();
        int code = child.ExitCode;
        // .NET reports a child killed by signal s as 128 + s.
        if (code <= 128 || code > 128 + 64) return code;
        int signal = code - 128;
        // A rank whose peer died often dies next, by its MPI transport's abort (SIGABRT) or a crash: the rank that died
        // first should be the one named. Such a death waits a moment before it speaks; the launcher stops this process
        // meanwhile when another rank's supervisor has already reported (and exited). A kill (SIGKILL, SIGTERM) is the cause.
        if (signal is not (9 or 15)) Thread.Sleep(ConsequenceGrace);
        long? saved = checkpointFolder is { } folder ? Checkpoint.SavedStep(folder) : null;
        Console.Error.WriteLine($"advml: rank {rank} of {size} died (signal {signal}{SignalName(signal)}). The job stops. " +
            (saved is long step
                ? $"The checkpoint of step {step} in '{checkpointFolder}' is intact: run the same command with --resume and the same -np {size} to continue."
                : checkpointFolder is null ? "No checkpoint was kept: --checkpoint FOLDER keeps one to resume from." : $"No checkpoint was written to '{checkpointFolder}' yet."));
        return 1;
    }

    private static string SignalName(int signal) => signal switch
    {
        9 => ", SIGKILL: kill -9 or the out-of-memory killer; a smaller --batch-size needs less memory",
        15 => ", SIGTERM",
        11 => ", SIGSEGV: a crash in native code",
        8 => ", SIGFPE: a crash in native code",
        6 => ", SIGABRT: native code aborted",
        _ => "",
    };

    private static void Forward(PosixSignalContext context, Process child, int signal)
    {
        context.Cancel = true; // the supervisor waits for the trainer, which handles the signal (cancellation)
        try
        {
            if (!child.HasExited) _ = Kill(child.Id, signal);
        }
        catch (InvalidOperationException)
        {
        }
    }

    /// <summary>The trainer is killed with its supervisor (the launcher kills the supervisors): no orphan keeps training.</summary>
    private static void DieWithParent()
    {
        if (!OperatingSystem.IsLinux()) return;
        int parent = GetParentPid();
        _ = Prctl(1 /* PR_SET_PDEATHSIG */, 9, 0, 0, 0);
        // The supervisor may have died before the call: then this process was re-parented already.
        if (GetParentPid() != parent) Environment.Exit(1);
    }

    [DllImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static extern int Prctl(int option, ulong arg2, ulong arg3, ulong arg4, ulong arg5);

    [DllImport("libc", EntryPoint = "getppid")]
    private static extern int GetParentPid();

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
