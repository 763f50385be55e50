using System.Text.Json;
using static Microsoft.ML.Adversarial.Tests.Cli.CliTests;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary><c>advml evaluate --masking-checks</c>, <c>--eot</c> and <c>--bpda</c> end to end (issue 28, items 3 and 4).</summary>
[TestClass]
public sealed class CliMaskingTests
{
    private static readonly Lazy<string> Trained = new(() =>
    {
        string dir = TestData.TempFolder();
        var train = Advml(dir, "train", "-o", "m.advml", "--train-count", "1000", "--rho", "0.25", "--epochs", "1", "--k", "0", "--lr", "0.003");
        Assert.AreEqual(0, train.Code, train.Err);
        return dir;
    });

    [TestMethod]
    public void FullMaskingChecksRunOnAnHonestModelAndLandInTheJson()
    {
        string dir = Trained.Value;
        var r = Advml(dir, "evaluate", "--model", "m.advml", "--count", "60", "--methods", "fgsm,pgd-linf", "--epsilons", "16",
            "--masking-checks", "full", "--eot", "2", "-o", "full.json");
        Assert.AreEqual(0, r.Code, r.Err);
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "full.json")));
        var checks = json.RootElement.GetProperty("MaskingChecks").EnumerateArray()
            .Select(c => (Check: c.GetProperty("Check").GetString(), Failed: c.GetProperty("Failed").GetBoolean(), Finding: c.GetProperty("Finding").GetString())).ToList();
        foreach (var check in new[] { "zero-gradient", "random-model", "large-epsilon", "iterative-vs-one-step", "white-vs-black-box", "noise-vs-attack" })
            Assert.IsTrue(checks.Any(c => c.Check == check), $"'{check}' in the JSON: {string.Join("; ", checks)}");
        Assert.IsFalse(checks.Any(c => c.Failed), string.Join("\n", checks.Where(c => c.Failed)));
        Assert.IsFalse(json.RootElement.GetProperty("GradientMaskingSuspected").GetBoolean());
    }

    [TestMethod]
    public void AnUnknownBpdaLayerIsRefusedListingTheModelsLayers()
    {
        string dir = Trained.Value;
        var r = Advml(dir, "evaluate", "--model", "m.advml", "--count", "20", "--methods", "pgd-linf", "--epsilons", "8", "--bpda", "quantize");
        Assert.AreNotEqual(0, r.Code);
        StringAssert.Contains(r.Err, "no layer named 'quantize'");
        StringAssert.Contains(r.Err, "conv", "the model's layers are listed");
    }

    [TestMethod]
    [DataRow("--eot", "0", "--eot 0 is out of range")]
    [DataRow("--masking-checks", "sometimes", "sometimes")]
    public void BadMaskingSettingsAreRefusedBeforeAnyWork(string option, string value, string expected)
    {
        string dir = TestData.TempFolder();
        var r = Advml(dir, "evaluate", "--model", "missing.advml", "--methods", "fgsm", option, value);
        Assert.AreEqual(2, r.Code, r.Err);
        StringAssert.Contains(r.Err, expected);
    }

    [TestMethod]
    public void EotOnAMethodWithoutGradientsIsRefusedNamingIt()
    {
        string dir = Trained.Value;
        var r = Advml(dir, "attack", "--model", "m.advml", "--count", "4", "--method", "square", "--epsilon", "8", "--eot", "5", "-o", "adv-eot");
        Assert.AreNotEqual(0, r.Code);
        StringAssert.Contains(r.Err, "'square' takes no gradients");
    }
}
