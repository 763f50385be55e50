using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.ML.Adversarial.Cli.Common;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary>
/// <c>advml preflight</c> (hidden): the first forward and backward pass of a model at a batch shape, in a process of its
/// own, so that a native crash ends this process and not the user's run (<see cref="NativePreflight"/>). Exit 0 when
/// the pass completes.
/// </summary>
internal static class PreflightCommand
{
    private static readonly Option<string> ModelPath = new("--model") { Description = "Model file (.advml)", Required = true };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("preflight", "Runs one forward and backward pass of a model in this process (used by the other commands)") { Hidden = true };
        foreach (var o in new Option[] { ModelPath, CommonOptions.BatchSize, CommonOptions.Precision, CommonOptions.ComputePath }) c.Options.Add(o);
        c.SetAction((p, _) => Task.FromResult(Run(p)));
        return c;
    }

    private static int Run(ParseResult p)
    {
        var decision = OneDnn.Decision;
        var (model, description) = CliData.LoadModel(p.GetValue(ModelPath)!, CPU);
        int batch = p.GetValue(CommonOptions.BatchSize);
        var options = CommonOptions.Compute(p);
        Console.WriteLine($"preflight: oneDNN {(OneDnn.Enabled ? "on" : "off")} ({decision.Reason}); batch [{batch}, {description.Channels}, {description.Height}, {description.Width}]; {options}");
        InjectedFault();
        using var scope = NewDisposeScope();
        model.eval();
        using var generator = new Generator(0);
        var x = rand(new long[] { batch, description.Channels, description.Height, description.Width }, generator: generator);
        Pass(model, x);
        if (!options.IsPlain)
        {
            using var fast = ComputeModel.Create(model, options with { VerifyFastPath = false });
            Pass(fast, x);
        }
        Console.WriteLine("preflight: the pass completed");
        return 0;
    }

    /// <summary>Forward, and the input gradient of the sum of the logits (backward through every layer).</summary>
    private static void Pass(nn.Module<Tensor, Tensor> model, Tensor x)
    {
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var leaf = x.detach().clone().requires_grad_(true);
        var logits = model.call(leaf);
        _ = autograd.grad(new[] { logits.sum() }, new[] { leaf })[0];
    }

    /// <summary>Test-only (<see cref="NativePreflight.FaultVariable"/>): this process raises SIGFPE on itself, as oneDNN's division by zero does.</summary>
    private static void InjectedFault()
    {
        string? fault = Environment.GetEnvironmentVariable(NativePreflight.FaultVariable);
        if (fault is null || OperatingSystem.IsWindows()) return;
        if (fault == "sigfpe" || (fault == "sigfpe-with-onednn" && OneDnn.Enabled))
        {
            Console.Out.Flush();
            // .NET's own SIGFPE handler ignores a SIGFPE sent by kill (it handles hardware faults in managed code and
            // hands native ones, like oneDNN's, to the default action): so the default action first, as for oneDNN's.
            _ = signal(Sigfpe, IntPtr.Zero); // SIG_DFL
            _ = kill(getpid(), Sigfpe);
        }
    }

    private const int Sigfpe = 8;

    [DllImport("libc.so.6", EntryPoint = "signal")]
    private static extern IntPtr signal(int signal, IntPtr handler);

    [DllImport("libc.so.6", EntryPoint = "kill")]
    private static extern int kill(int pid, int signal);

    [DllImport("libc.so.6", EntryPoint = "getpid")]
    private static extern int getpid();
}
