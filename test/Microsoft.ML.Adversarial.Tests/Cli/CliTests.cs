using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>The advml tool, run as a separate process exactly as a user runs it.</summary>
[TestClass]
public sealed class CliTests
{
    public TestContext TestContext { get; set; } = null!;

    internal static string ToolPath() => TestData.BuiltAssembly(Path.Combine("src", "Microsoft.ML.Adversarial.Cli"), "advml.dll");

    internal static (int Code, string Out, string Err) Advml(string workDir, params string[] args)
    {
        using var p = Start(workDir, args);
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err.Result);
    }

    internal static Process Start(string workDir, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(ToolPath());
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        return Process.Start(psi)!;
    }

    [TestMethod]
    [DataRow("evaluate", "--model", "m.advml", "--epsilons", "300", "Epsilon '300'")]
    [DataRow("evaluate", "--model", "missing.advml", "", "", "does not exist")]
    [DataRow("evaluate", "", "", "", "", "'--model' is required")]
    [DataRow("train", "-o", "x.advml", "--k", "40", "must lie in [0, m = 32]")]
    [DataRow("train", "-o", "x.advml", "--rho", "0", "rho must be a positive number")]
    [DataRow("train", "-o", "x.advml", "--epsilon", "fixed:-3", "epsilon")]
    [DataRow("train", "-o", "x.advml", "--device", "cuda:7", "cuda:7")]
    [DataRow("evaluate", "--model", "m.advml", "--methods", "fgsmm", "Unknown method 'fgsmm'")]
    [DataRow("attack", "--model", "m.advml", "-o", "/proc/no-such-dir", "Cannot write to")]
    [DataRow("reproduce", "--profile", "huge", "", "", "Unknown profile 'huge'")]
    [DataRow("frobnicate", "", "", "", "", "advml:")]
    public void BadArgumentsGiveAOneLineErrorAndANonZeroExit(string command, string a1, string a2, string a3, string a4, string expected)
    {
        string dir = TestData.TempFolder();
        var args = new[] { command, a1, a2, a3, a4 }.Where(a => a.Length > 0).ToArray();
        var (code, _, err) = Advml(dir, args);
        TestContext.WriteLine($"advml {string.Join(' ', args)} -> {code}: {err}");
        Assert.AreNotEqual(0, code);
        var lines = err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(1, lines.Length, $"expected one line on stderr, got:\n{err}");
        StringAssert.StartsWith(lines[0], "advml:");
        StringAssert.Contains(err, expected, StringComparison.OrdinalIgnoreCase);
    }

    [TestMethod]
    public void TrainEvaluateAttackAndTransferEndToEnd()
    {
        string dir = TestData.TempFolder();
        var common = new[] { "--train-count", "600", "--rho", "0.25", "--epochs", "1" };
        Assert.AreEqual(0, Advml(dir, new[] { "train", "-o", "adv.advml", "--k", "16" }.Concat(common).ToArray()).Code);
        var clean = Advml(dir, new[] { "train", "-o", "clean.advml", "--k", "0", "--seed", "2", "--activation", "elu" }.Concat(common).ToArray());
        Assert.AreEqual(0, clean.Code, clean.Err);

        var eval = Advml(dir, "evaluate", "--model", "adv.advml", "--count", "100", "--methods", "fgsm,iter-ll", "--epsilons", "4,16", "-o", "eval.json");
        Assert.AreEqual(0, eval.Code, eval.Err);
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json"))))
        {
            var rows = json.RootElement.GetProperty("Rows").EnumerateArray().ToList();
            Assert.AreEqual(5, rows.Count, "clean + 2 methods x 2 epsilons");
            Assert.IsTrue(rows.All(r => r.GetProperty("Count").GetInt32() == 100));
        }

        Assert.AreEqual(0, Advml(dir, "attack", "--model", "adv.advml", "--method", "fgsm", "--count", "30", "-o", "png").Code);
        Assert.AreEqual(30, Directory.GetFiles(Path.Combine(dir, "png"), "*.png", SearchOption.AllDirectories).Length);
        Assert.AreEqual(0, Advml(dir, "attack", "--model", "adv.advml", "--count", "30", "-o", "idx", "--format", "idx").Code);
        Assert.AreEqual(16 + 30 * 28 * 28, new FileInfo(Path.Combine(dir, "idx", "images-idx-ubyte")).Length);

        var transfer = Advml(dir, "transfer", "--models", "A=adv.advml,C=clean.advml", "--count", "100", "--methods", "fgsm", "-o", "transfer.csv");
        Assert.AreEqual(0, transfer.Code, transfer.Err);
        var csv = File.ReadAllLines(Path.Combine(dir, "transfer.csv"));
        Assert.AreEqual(1 + 4, csv.Length, "header + 2 sources x 2 targets");
        StringAssert.Contains(transfer.Out, "transfer rate");
        Assert.IsFalse(Directory.EnumerateFiles(dir, "*.tmp*", SearchOption.AllDirectories).Any(), "no temporary files may remain");
    }

    [TestMethod]

    [TestCategory("Slow")]
    public void TrainingKilledWithSigkillResumesToTheSameModel()
    {
        string dir = TestData.TempFolder();
        string[] Args(string output, string checkpoint) => new[]
        {
            "train", "-o", output, "--train-count", "2000", "--rho", "0.25", "--k", "16", "--max-steps", "500", "--epochs", "9",
            "--checkpoint", checkpoint, "--checkpoint-every", "40", "--seed", "3",
        };
        var straight = Advml(dir, Args("straight.advml", "ck-straight"));
        Assert.AreEqual(0, straight.Code, straight.Err);

        using (var p = Start(dir, Args("resumed.advml", "ck")))
        {
            string state = Path.Combine(dir, "ck", "checkpoint", "state.json");
            var watch = Stopwatch.StartNew();
            while (!File.Exists(state) && !p.HasExited && watch.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(10);
            if (p.HasExited) Assert.Inconclusive("training finished before it could be interrupted");
            p.Kill(entireProcessTree: true); // SIGKILL: no cleanup code runs
            p.WaitForExit();
        }
        Assert.IsFalse(File.Exists(Path.Combine(dir, "resumed.advml")), "the killed run must not have written a model");
        long killedAt = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "ck", "checkpoint", "state.json"))).RootElement.GetProperty("Step").GetInt64();
        Assert.IsTrue(killedAt is > 0 and < 500, $"killed at step {killedAt}");

        var resumed = Advml(dir, Args("resumed.advml", "ck").Append("--resume").ToArray());
        Assert.AreEqual(0, resumed.Code, resumed.Err);
        StringAssert.Contains(resumed.Out, "resumed at");

        using var scope = torch.NewDisposeScope();
        var a = ModelIO.Load(Path.Combine(dir, "straight.advml")).Model;
        var b = ModelIO.Load(Path.Combine(dir, "resumed.advml")).Model;
        foreach (var ((name, x), (_, y)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.IsTrue(x.equal(y).all().item<bool>(), $"{name} differs between the uninterrupted and the killed-and-resumed run (killed at {killedAt})");
    }

    [TestMethod]

    [TestCategory("Slow")]
    public void ReproduceWritesTheReportFiguresAndHonestVerdicts()
    {
        string dir = TestData.TempFolder();
        var run = Advml(dir, "reproduce", "--profile", "smoke", "-o", "out");
        Assert.AreEqual(0, run.Code, run.Err + run.Out);
        string output = Path.Combine(dir, "out");
        string report = File.ReadAllText(Path.Combine(output, "report.md"));
        foreach (var section in new[] { "## Findings", "Table 1", "Table 2", "Table 3", "Table 4", "Table 5", "Figure 1", "Table 6", "Table 7" })
            StringAssert.Contains(report, section);
        foreach (var png in new[] { "accuracy-vs-epsilon.png", "fig2-transfer-vs-epsilon.png", "fig1-ratio-vs-rho.png" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(output, png));
            Assert.IsTrue(bytes.Length > 1000 && bytes[1] == (byte)'P' && bytes[2] == (byte)'N' && bytes[3] == (byte)'G', $"{png} is not a PNG");
            // The title is drawn: without a usable font every label is silently missing.
            using var image = SkiaSharp.SKBitmap.Decode(bytes);
            int ink = 0;
            for (int y = 0; y < Microsoft.ML.Adversarial.Cli.Experiments.LineChart.TitleBand; y++)
                for (int x = 0; x < image.Width; x++)
                    if (image.GetPixel(x, y) is var c && c.Red + c.Green + c.Blue < 3 * 128) ink++;
            Assert.IsTrue(ink > 300, $"{png}: the title band has {ink} dark pixels; the title was not drawn");
        }
        Assert.AreEqual(15, Directory.GetFiles(Path.Combine(output, "models"), "*.advml").Length);

        // Every verdict must follow from the numbers in results.json.
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "results.json")));
        var acc = json.RootElement.GetProperty("accuracy").EnumerateArray()
            .ToDictionary(r => (r.GetProperty("Model").GetString()!, r.GetProperty("Method").GetString()!, r.GetProperty("Epsilon").GetDouble()), r => r);
        double Top1(string m, string method, double e) => acc[(m, method, e)].GetProperty("Top1").GetDouble();
        int Count(string m, string method, double e) => acc[(m, method, e)].GetProperty("Count").GetInt32();
        var verdicts = json.RootElement.GetProperty("findings").EnumerateArray().ToDictionary(f => f.GetProperty("Id").GetString()!, f => f.GetProperty("Verdict").GetString()!);
        var findings = verdicts.ToDictionary(v => v.Key, v => v.Value == "yes");
        // A verdict needs models of at least 50% clean accuracy; otherwise it is "not enough data", never yes/no.
        bool Trained(params string[] models) => models.All(m => Top1(m, "clean", 0) >= 0.5);
        void Check(string id, bool shown, params string[] models) =>
            Assert.AreEqual(Trained(models) ? (shown ? "yes" : "no") : "not enough data", verdicts[id], id);
        // Differences count beyond the combined Wilson 95% intervals.
        bool Above(double a, int na, double b, int nb) => Microsoft.ML.Adversarial.Evaluation.Wilson.Above(a, na, b, nb);
        Check("T1-robust", Above(Top1("adv-step-ll", "step-ll", 16), Count("adv-step-ll", "step-ll", 16), Top1("A", "step-ll", 16), Count("A", "step-ll", 16)), "A", "adv-step-ll");
        double drop = Top1("A", "clean", 0) - Top1("adv-step-ll", "clean", 0);
        Check("T1-clean", drop >= 0 && drop < 0.05, "A", "adv-step-ll");
        Check("T2-iterative", Top1("adv-step-ll", "iter-ll", 16) < 0.5 * Top1("adv-step-ll", "clean", 0), "A", "adv-step-ll");
        StringAssert.Contains(report, "Wilson 95%");
        StringAssert.Contains(report, findings.Count(f => f.Value) + " of " + findings.Count + " findings reproduced");
        TestContext.WriteLine(run.Out);
    }
}
