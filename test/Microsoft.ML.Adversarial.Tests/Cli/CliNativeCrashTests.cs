using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>
/// Issue 27 item 9: a network whose first pass dies in libtorch (SIGFPE, exit 136, from oneDNN on a CPU that reports no
/// cache sizes) ended the command as a dead process. On a suspicious CPU, or with ADVML_PREFLIGHT=always, advml runs
/// that pass in a child process first (`advml preflight`); the SIGFPE is injected there (ADVML_TEST_INJECT_FAULT), as
/// the Zen 5 crash cannot be reproduced on this machine.
/// </summary>
[TestClass]
public sealed class CliNativeCrashTests
{
    public TestContext TestContext { get; set; } = null!;

    private static (int Code, string Out, string Err) Advml(string dir, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(CliTests.ToolPath());
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        foreach (var name in new[] { "ADVML_PREFLIGHT", "ADVML_ONEDNN", "ADVML_TEST_INJECT_FAULT", "ADVML_TEST_CPU_CACHES", "ONEDNN_VERBOSE", "DNNL_VERBOSE" })
            psi.Environment.Remove(name);
        foreach (var (name, value) in environment) psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err.Result);
    }

    private static string ModelFolder()
    {
        string dir = TestData.TempFolder();
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        TorchSharp.torch.manual_seed(1);
        using (var model = spec.Create(10, (1, 28, 28)))
            ModelIO.Save(model, new ModelDescription(spec, 10, 1, 28, 28, FashionMnist.ClassNames.ToArray()), Path.Combine(dir, "m.advml"));
        return dir;
    }

    private static readonly string[] Evaluate = { "evaluate", "--model", "m.advml", "--count", "20", "--methods", "fgsm", "--epsilons", "4", "-o", "eval.json" };

    private static string Rows(string dir) => string.Join("; ", JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json"))).RootElement
        .GetProperty("Rows").EnumerateArray().Select(r => $"{r.GetProperty("Method")} {r.GetProperty("Top1")}"));

    [TestMethod]
    public void AFirstPassThatDiesOnlyWithOneDnnOnCompletesWithOneDnnOffAndSaysSo()
    {
        string dir = ModelFolder();
        var reference = Advml(dir, new Dictionary<string, string> { ["ADVML_ONEDNN"] = "off" }, Evaluate);
        Assert.AreEqual(0, reference.Code, reference.Err);
        string expected = Rows(dir);
        File.Delete(Path.Combine(dir, "eval.json"));

        // Asked for (this CPU reports its caches): the child dies with oneDNN on, completes with it off; the run goes on with it off.
        var asked = Advml(dir, new Dictionary<string, string> { ["ADVML_PREFLIGHT"] = "always", ["ADVML_TEST_INJECT_FAULT"] = "sigfpe-with-onednn" }, Evaluate);
        TestContext.WriteLine($"asked -> {asked.Code}\n{asked.Err}\n{asked.Out}");
        Assert.AreEqual(0, asked.Code, asked.Err);
        var warning = asked.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Single(l => l.StartsWith("WARNING: the first forward and backward pass", StringComparison.Ordinal));
        StringAssert.Contains(warning, "SmallCnn ('m.advml') at [20, 1, 28, 28] died with SIGFPE (arithmetic fault) (exit 136)");
        StringAssert.Contains(warning, "with oneDNN off it completes");
        Assert.AreEqual(expected, Rows(dir), "the run with oneDNN switched off gives what a run with ADVML_ONEDNN=off gives");
        File.Delete(Path.Combine(dir, "eval.json"));

        // A CPU that reports no cache sizes (injected into the process): oneDNN is off from the start, the child runs with
        // it off, and only the decision's one warning line is given.
        var suspicious = Advml(dir, new Dictionary<string, string> { ["ADVML_TEST_CPU_CACHES"] = "none", ["ADVML_TEST_INJECT_FAULT"] = "sigfpe-with-onednn" }, Evaluate);
        TestContext.WriteLine($"suspicious -> {suspicious.Code}\n{suspicious.Err}\n{suspicious.Out}");
        Assert.AreEqual(0, suspicious.Code, suspicious.Err);
        StringAssert.Contains(suspicious.Out, "in a separate process first (the CPU reports no usable cache sizes; oneDNN off)");
        var lines = suspicious.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(1, lines.Length, suspicious.Err);
        StringAssert.StartsWith(lines[0], "WARNING: oneDNN switched off: ");
        StringAssert.Contains(lines[0], "Linux lists no data-cache sizes");
        Assert.AreEqual(expected, Rows(dir));
        File.Delete(Path.Combine(dir, "eval.json"));

        // The same CPU with oneDNN forced on: the child dies, the retry with oneDNN off completes, the run goes on with it off.
        var forced = Advml(dir, new Dictionary<string, string> { ["ADVML_TEST_CPU_CACHES"] = "none", ["ADVML_ONEDNN"] = "on", ["ADVML_TEST_INJECT_FAULT"] = "sigfpe-with-onednn" }, Evaluate);
        TestContext.WriteLine($"forced -> {forced.Code}\n{forced.Err}");
        Assert.AreEqual(0, forced.Code, forced.Err);
        StringAssert.Contains(forced.Err, "died with SIGFPE (arithmetic fault) (exit 136) in a separate process with oneDNN on");
        Assert.AreEqual(expected, Rows(dir));
    }

    [TestMethod]
    public void AFirstPassThatDiesEitherWayStopsWithOneClearLine()
    {
        string dir = ModelFolder();
        // This CPU reports its caches: no child process runs (the fault, which kills any child, never fires) unless asked.
        var normal = Advml(dir, new Dictionary<string, string> { ["ADVML_TEST_INJECT_FAULT"] = "sigfpe" }, Evaluate);
        Assert.AreEqual(0, normal.Code, normal.Err);
        Assert.IsFalse(normal.Out.Contains("separate process", StringComparison.Ordinal), normal.Out);
        Assert.AreEqual("", normal.Err.Trim());
        File.Delete(Path.Combine(dir, "eval.json"));

        var died = Advml(dir, new Dictionary<string, string> { ["ADVML_PREFLIGHT"] = "always", ["ADVML_TEST_INJECT_FAULT"] = "sigfpe" }, Evaluate);
        TestContext.WriteLine($"-> {died.Code}\n{died.Err}");
        Assert.AreEqual(1, died.Code, died.Err);
        var lines = died.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(1, lines.Length, $"one line, got:\n{died.Err}");
        StringAssert.StartsWith(lines[0], "advml: SmallCnn ('m.advml') cannot run on this CPU (" + FastPathCheck.Cpu);
        StringAssert.Contains(lines[0], "first forward and backward pass at batch [20, 1, 28, 28]");
        StringAssert.Contains(lines[0], "died with SIGFPE (arithmetic fault) (exit 136) with oneDNN on, and again with oneDNN off");
        StringAssert.Contains(lines[0], "try a smaller --batch-size");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "eval.json")), "no report from a run that stopped");
    }

    [TestMethod]
    public void OneDnnRunsTheConvolutionsOnlyWhileItIsOn()
    {
        string dir = ModelFolder();
        int Convolutions(string onednn)
        {
            var r = Advml(dir, new Dictionary<string, string> { ["ADVML_ONEDNN"] = onednn, ["ONEDNN_VERBOSE"] = "1", ["DNNL_VERBOSE"] = "1" },
                "preflight", "--model", "m.advml", "--batch-size", "4");
            Assert.AreEqual(0, r.Code, r.Err);
            StringAssert.Contains(r.Out, $"preflight: oneDNN {onednn} (ADVML_ONEDNN={onednn})");
            var lines = r.Out.Split('\n').Where(l => l.StartsWith("onednn_verbose,", StringComparison.Ordinal) && l.Contains(",exec,", StringComparison.Ordinal) && l.Contains("convolution", StringComparison.Ordinal)).ToList();
            TestContext.WriteLine($"ADVML_ONEDNN={onednn}: {lines.Count} oneDNN convolutions{(lines.Count > 0 ? ", e.g. " + lines[0] : "")}");
            return lines.Count;
        }
        Assert.IsTrue(Convolutions("on") > 0, "oneDNN on: its convolutions run");
        Assert.AreEqual(0, Convolutions("off"), "oneDNN off: none of its convolutions may run");
    }
}
