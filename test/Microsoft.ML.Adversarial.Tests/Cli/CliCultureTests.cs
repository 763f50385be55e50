using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>
/// Issue 27, item 1: numbers on the command line and in the files advml writes do not depend on the user's locale.
/// advml runs as a child process with LANG/LC_ALL set to de_DE.UTF-8 (a decimal-comma culture); .NET takes its
/// CurrentCulture from those variables, with ICU providing the culture's data.
/// </summary>
[TestClass]
public sealed class CliCultureTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly Dictionary<string, string> German = new() { ["LANG"] = "de_DE.UTF-8", ["LC_ALL"] = "de_DE.UTF-8" };

    /// <summary>The test means nothing where .NET runs in invariant globalization mode (no ICU): de-DE would not be a decimal-comma culture.</summary>
    private static void RequireDecimalCommaCulture()
    {
        if (new CultureInfo("de-DE").NumberFormat.NumberDecimalSeparator != ",")
            Assert.Inconclusive("de-DE has no decimal comma here (invariant globalization mode, no ICU): the child process could not run under it.");
    }

    [TestMethod]
    public void TrainUnderADecimalCommaCultureUsesTheNumbersAsWritten()
    {
        RequireDecimalCommaCulture();
        string dir = TestData.TempFolder();
        var r = CliWorkLossTests.Advml(dir, German, "train", "-o", "m.advml", "--count", "64", "--rho", "0.25", "--lambda", "0.3", "--lr", "0.001",
            "--epsilon", "fixed:2.5", "--max-steps", "1", "--checkpoint", "ck", "--checkpoint-every", "1");
        TestContext.WriteLine(r.Out + r.Err);
        Assert.AreEqual(0, r.Code, r.Err);
        using var state = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "ck", "checkpoint", "state.json")));
        var settings = state.RootElement.GetProperty("Settings");
        Assert.AreEqual("0.001", settings.GetProperty("LearningRate").GetString(), "--lr 0.001");
        Assert.AreEqual("0.3", settings.GetProperty("AdversarialLossWeight").GetString(), "--lambda 0.3");
        StringAssert.Contains(settings.GetProperty("Epsilon").GetString(), "2.5", "--epsilon fixed:2.5");
        Assert.AreEqual(0.25, ModelIO.Load(Path.Combine(dir, "m.advml")).Description.Spec.Rho, "--rho 0.25");
        // What it prints is invariant too: "lambda 0.3", not "lambda 3" or "lambda 0,3".
        StringAssert.Contains(r.Out, "lambda 0.3");
    }

    [TestMethod]
    [DataRow("0,001", false)]
    [DataRow("0,001", true)]
    [DataRow("1,000", false)]
    [DataRow("abc", true)]
    public void ANumberThatIsNotInvariantIsRefusedNamingItsOption(string value, bool german)
    {
        if (german) RequireDecimalCommaCulture();
        string dir = TestData.TempFolder();
        var r = CliWorkLossTests.Advml(dir, german ? German : null, "train", "-o", "x.advml", "--lr", value, "--max-steps", "1", "--count", "64");
        TestContext.WriteLine($"--lr {value} -> {r.Code}: {r.Err}");
        Assert.AreNotEqual(0, r.Code, "a comma is never a decimal point (nor a thousands separator) on the command line: " + r.Out);
        Assert.AreEqual(1, r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, r.Err);
        StringAssert.Contains(r.Err, "--lr");
        StringAssert.Contains(r.Err, value);
        Assert.IsFalse(File.Exists(Path.Combine(dir, "x.advml")));
    }

    /// <summary>
    /// attack --epsilon 2.5 under de-DE: FGSM moves each pixel of a uniform grey image by exactly epsilon, so the
    /// written IDX bytes show the epsilon used (2.5 -> 128 +- 2 or 3; the culture bug made it 25).
    /// </summary>
    [TestMethod]
    public void AttackUnderADecimalCommaCultureUsesTheEpsilonAsWritten()
    {
        RequireDecimalCommaCulture();
        string dir = TestData.TempFolder();
        var classes = new[] { "a", "b" };
        foreach (var split in new[] { "train", "test" })
            foreach (var c in classes)
            {
                Directory.CreateDirectory(Path.Combine(dir, "data", split, c));
                using var bitmap = new SKBitmap(28, 28, SKColorType.Gray8, SKAlphaType.Opaque);
                bitmap.Erase(new SKColor(128, 128, 128));
                using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
                File.WriteAllBytes(Path.Combine(dir, "data", split, c, "grey.png"), png.ToArray());
            }
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        TorchSharp.torch.manual_seed(1);
        using (var model = spec.Create(2, (1, 28, 28)))
            ModelIO.Save(model, new ModelDescription(spec, 2, 1, 28, 28, classes), Path.Combine(dir, "m.advml"));

        var r = CliWorkLossTests.Advml(dir, German, "attack", "--model", "m.advml", "--data", "data", "--grayscale", "--image-size", "28",
            "--method", "fgsm", "--epsilon", "2.5", "--count", "2", "--format", "idx", "-o", "adv");
        TestContext.WriteLine(r.Out + r.Err);
        Assert.AreEqual(0, r.Code, r.Err);
        var bytes = File.ReadAllBytes(Path.Combine(dir, "adv", "images-idx-ubyte"))[16..];
        int largest = bytes.Max(b => Math.Abs(b - 128));
        Assert.IsTrue(largest is 2 or 3, $"pixels moved by up to {largest}/255; --epsilon 2.5 moves them by 2.5");
    }

    /// <summary>The library's text tables (what a user writes to a file from ToString) are invariant in-process too.</summary>
    [TestMethod]
    public void LibraryReportTablesAreInvariantUnderADecimalCommaCulture()
    {
        RequireDecimalCommaCulture();
        var saved = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = new CultureInfo("de-DE");
            var report = new RobustnessReport
            {
                Model = "m",
                Rows = new[] { new AccuracyRow("m", "clean", 0, 1000, 0.784, 0.95, 1), new AccuracyRow("m", "fgsm", 2.5, 1000, 0.5, 0.8, 0.638) },
                LabelLeaks = new[] { new LabelLeakRow("m", "fgsm", 2.5, 0.784, 0.9, 0.5) },
                Warnings = Array.Empty<string>(),
            };
            string text = report.ToString();
            TestContext.WriteLine(text);
            StringAssert.Contains(text, "78.4");
            StringAssert.Contains(text, "0.638");
            StringAssert.Contains(report.LabelLeaks[0].Verdict, "eps 2.5 gives 90.0");
            Assert.IsFalse(text.Contains("78,4") || text.Contains("0,638") || text.Contains("90,0"), text);
        }
        finally { CultureInfo.CurrentCulture = saved; }
    }

    /// <summary>
    /// Library text that is stored and compared (a model's input range, checkpoint settings, activation and model
    /// descriptions) is invariant: a checkpoint or model written under one locale reads the same under another.
    /// (Found by running the CLI tests under de-DE: an imported model's range read "mean [0,485, ...]" in-process.)
    /// </summary>
    [TestMethod]
    public void StoredDescriptionsAreInvariantUnderADecimalCommaCulture()
    {
        RequireDecimalCommaCulture();
        var saved = CultureInfo.CurrentCulture;
        try
        {
            CultureInfo.CurrentCulture = new CultureInfo("de-DE");
            StringAssert.Contains(InputRange.Normalized(new[] { 0.485f, 0.456f, 0.406f }, new[] { 0.229f, 0.224f, 0.225f }).Description, "mean [0.485, 0.456, 0.406]");
            StringAssert.Contains(new InputRange(new[] { -0.5f }, new[] { 0.5f }).Description, "[-0.5, 0.5]");
            Assert.AreEqual("fixed 2.5", Microsoft.ML.Adversarial.Training.EpsilonDistribution.Parse("fixed:2.5").ToString());
            Assert.AreEqual("uniform [0.5, 16]", Microsoft.ML.Adversarial.Training.EpsilonDistribution.Parse("uniform:0.5:16").ToString());
            Assert.AreEqual("reludecay:0.01", ActivationSpec.Parse("reludecay:0.01").ToString());
            StringAssert.Contains(new ModelSpec(ModelArchitecture.SmallCnn, 0.25, null, 0.5).ToString(), "rho 0.25, relu, dropout 0.5");
        }
        finally { CultureInfo.CurrentCulture = saved; }
    }
}
