using System.Text.Json;
using static Microsoft.ML.Adversarial.Tests.Cli.CliTests;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary><c>--precision</c> end to end: bf16 training and evaluation work, stay near fp32, and a bad value fails first.</summary>
[TestClass]
public sealed class CliPrecisionTests
{
    private static Dictionary<(string, double), double> Rows(string path)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(path));
        return json.RootElement.GetProperty("Rows").EnumerateArray()
            .ToDictionary(r => (r.GetProperty("Method").GetString()!, r.GetProperty("Epsilon").GetDouble()), r => r.GetProperty("Top1").GetDouble());
    }

    [TestMethod]
    public void BFloat16TrainingAndEvaluationStayNearFp32()
    {
        string dir = TestData.TempFolder();
        var train = Advml(dir, "train", "-o", "bf16.advml", "--train-count", "1000", "--rho", "0.25", "--epochs", "1", "--lr", "0.003", "--precision", "bf16");
        Assert.AreEqual(0, train.Code, train.Err);
        string[] Evaluate(string precision, string output) =>
            new[] { "evaluate", "--model", "bf16.advml", "--count", "300", "--methods", "fgsm,step-ll", "--epsilons", "8", "--precision", precision, "-o", output };
        var fp32 = Advml(dir, Evaluate("fp32", "fp32.json"));
        Assert.AreEqual(0, fp32.Code, fp32.Err);
        var bf16 = Advml(dir, Evaluate("bf16", "bf16.json"));
        Assert.AreEqual(0, bf16.Code, bf16.Err);
        var a = Rows(Path.Combine(dir, "fp32.json"));
        var b = Rows(Path.Combine(dir, "bf16.json"));
        Assert.IsTrue(a[("clean", 0)] > 0.5, $"the bf16-trained model learned: clean accuracy {a[("clean", 0)]:P1}");
        foreach (var key in a.Keys)
            Assert.AreEqual(a[key], b[key], 0.02, $"{key}: bf16 evaluation {b[key]:P1} vs fp32 {a[key]:P1} (bound 2 points on 300 images)");
    }

    [TestMethod]
    public void ResumingAnFp32CheckpointWithBf16IsRefusedNamingBothPrecisions()
    {
        string dir = TestData.TempFolder();
        string[] Args(params string[] extra) =>
            new[] { "train", "-o", "m.advml", "--count", "64", "--batch-size", "32", "--k", "0", "--rho", "0.25", "--checkpoint", "ck", "--checkpoint-every", "1" }
                .Concat(extra).ToArray();
        var first = Advml(dir, Args("--max-steps", "1"));
        Assert.AreEqual(0, first.Code, first.Err);
        var resumed = Advml(dir, Args("--max-steps", "2", "--resume", "--precision", "bf16"));
        Assert.AreNotEqual(0, resumed.Code, "an fp32 checkpoint resumed in bf16 must be refused:\n" + resumed.Out);
        StringAssert.Contains(resumed.Err, "Precision: fp32 vs bf16");
        StringAssert.Contains(resumed.Err, "resume with the checkpoint's settings");
    }

    [TestMethod]
    public void AnUnknownPrecisionIsRefusedBeforeAnyWork()
    {
        string dir = TestData.TempFolder();
        var r = Advml(dir, "evaluate", "--model", "missing.advml", "--precision", "fp8");
        Assert.AreNotEqual(0, r.Code);
        StringAssert.Contains(r.Err, "fp8");
        StringAssert.Contains(r.Err, "bf16");
        Assert.IsFalse(r.Err.Contains("missing.advml"), "refused while parsing, before the model is opened: " + r.Err);
    }

    /// <summary>--compute: the plain path, the checked fast path and the unchecked one give the same rows on a model
    /// whose fast path agrees on this CPU; a value outside the three is refused while parsing.</summary>
    [TestMethod]
    public void ComputePathOptionRunsPlainCheckedAndUnchecked()
    {
        string dir = TestData.TempFolder();
        var train = Advml(dir, "train", "-o", "m.advml", "--train-count", "500", "--rho", "0.25", "--epochs", "1", "--compute", "plain");
        Assert.AreEqual(0, train.Code, train.Err);
        var rows = new Dictionary<string, Dictionary<(string, double), double>>();
        foreach (var path in new[] { "plain", "checked", "unchecked" })
        {
            var r = Advml(dir, "evaluate", "--model", "m.advml", "--count", "200", "--methods", "fgsm", "--epsilons", "8", "--compute", path, "-o", path + ".json");
            Assert.AreEqual(0, r.Code, r.Err);
            rows[path] = Rows(Path.Combine(dir, path + ".json"));
        }
        foreach (var key in rows["plain"].Keys)
        {
            Assert.AreEqual(rows["plain"][key], rows["checked"][key], 0.0051, $"{key}: checked fast path vs plain");
            Assert.AreEqual(rows["plain"][key], rows["unchecked"][key], 0.0051, $"{key}: unchecked fast path vs plain");
        }
        var bad = Advml(dir, "evaluate", "--model", "missing.advml", "--compute", "fastest");
        Assert.AreNotEqual(0, bad.Code);
        StringAssert.Contains(bad.Err, "fastest");
        StringAssert.Contains(bad.Err, "plain");
    }
}
