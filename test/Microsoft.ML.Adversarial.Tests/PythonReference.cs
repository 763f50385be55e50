using System.Diagnostics;

namespace Microsoft.ML.Adversarial.Tests;

/// <summary>Runs the reference scripts in test/reference with Debian's Python (python3-torch, python3-torchvision).</summary>
internal static class PythonReference
{
    public const string Python = "/usr/bin/python3";

    /// <summary>Marks the test inconclusive (reported as skipped, with the reason) when the modules are missing.</summary>
    public static void Require(string modules)
    {
        if (!File.Exists(Python) || Run($"-c \"import {modules}\"", out _) != 0)
            Assert.Inconclusive($"{Python} cannot import {modules} (build/setup.sh --with-pytorch installs python3-torch and python3-torchvision): comparison skipped.");
    }

    public static string Script(string name) => Path.Combine(RepoRoot(), "test", "reference", name);

    public static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.Adversarial.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Repository root (Microsoft.ML.Adversarial.sln) not found above " + AppContext.BaseDirectory);
    }

    public static int Run(string args, out string output)
    {
        var psi = new ProcessStartInfo(Python, args) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        var stderr = p.StandardError.ReadToEndAsync();
        output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        output += stderr.Result;
        return p.ExitCode;
    }

    public static float[] ReadFloats(string path) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(path)).ToArray();
}
