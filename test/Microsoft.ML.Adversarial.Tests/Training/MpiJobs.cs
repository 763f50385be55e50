using System.Diagnostics;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Cli;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>
/// Helpers of the issue 30 tests (two hosts over a network, the estimator under MPI, failed reads and killed ranks):
/// MPICH's launcher, bounded process runs, and weight comparisons of saved models.
/// </summary>
internal static class MpiJobs
{
    /// <summary>MPICH's launcher, or inconclusive (saying why) when MPI is not installed.</summary>
    public static string RequireMpiexec()
    {
        foreach (var name in new[] { "mpiexec.mpich", "mpiexec.hydra", "mpiexec" })
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        throw new AssertInconclusiveException(
            "mpiexec is not on the PATH: MPI is not installed (build/setup.sh installs MPICH: apt-get install mpich). The multi-rank test was not run.");
    }

    /// <summary>Runs <paramref name="file"/> with <paramref name="args"/> in <paramref name="dir"/>, one thread per process; fails after <paramref name="seconds"/>.</summary>
    public static (int Code, string Out, string Err) Run(TestContext context, string dir, string file, IEnumerable<string> args, int seconds = 120,
        IDictionary<string, string>? env = null, Action<Process>? whileRunning = null)
    {
        var psi = new ProcessStartInfo(file) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        psi.Environment["OMP_NUM_THREADS"] = "1";
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        whileRunning?.Invoke(p);
        if (!p.WaitForExit(seconds * 1000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"{Path.GetFileName(file)} did not finish in {seconds} s:\n{output.Result}\n{err.Result}");
        }
        p.WaitForExit();
        context.WriteLine($"{Path.GetFileName(file)} {string.Join(' ', psi.ArgumentList)} -> {p.ExitCode}\n{output.Result}\n{err.Result}");
        return (p.ExitCode, output.Result, err.Result);
    }

    /// <summary><c>mpiexec -np <paramref name="ranks"/> dotnet advml.dll args</c>.</summary>
    public static (int Code, string Out, string Err) Advml(TestContext context, string dir, int ranks, IEnumerable<string> args, int seconds = 120,
        Action<Process>? whileRunning = null)
        => Run(context, dir, RequireMpiexec(), new[] { "-np", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture), "dotnet", CliTests.ToolPath() }.Concat(args),
            seconds, whileRunning: whileRunning);

    /// <summary><c>dotnet advml.dll args</c> in one process.</summary>
    public static (int Code, string Out, string Err) AdvmlAlone(TestContext context, string dir, IEnumerable<string> args, int seconds = 120)
        => Run(context, dir, "dotnet", new[] { CliTests.ToolPath() }.Concat(args), seconds);

    public static double MaxWeightDifference(string a, string b)
    {
        var (ma, _) = ModelIO.Load(a);
        var (mb, _) = ModelIO.Load(b);
        using (ma)
        using (mb)
            return MaxDifference(ma.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), mb.named_parameters().Select(p => (p.name, (Tensor)p.parameter)));
    }

    public static double MaxBufferDifference(string a, string b)
    {
        var (ma, _) = ModelIO.Load(a);
        var (mb, _) = ModelIO.Load(b);
        using (ma)
        using (mb)
            return MaxDifference(ma.named_buffers(), mb.named_buffers());
    }

    public static double MaxDifference(IEnumerable<(string Name, Tensor Tensor)> a, IEnumerable<(string Name, Tensor Tensor)> b)
    {
        using var scope = NewDisposeScope();
        var other = b.ToDictionary(t => t.Name, t => t.Tensor);
        double max = 0;
        int count = 0;
        foreach (var (name, t) in a)
        {
            Assert.IsTrue(other.TryGetValue(name, out var u), $"'{name}' is missing from the second model");
            max = Math.Max(max, (t.to(ScalarType.Float64) - u.to(ScalarType.Float64)).abs().max().item<double>());
            count++;
        }
        Assert.AreEqual(other.Count, count, "the models have different tensors");
        return max;
    }
}
