using System.Text.Json;
using static Microsoft.ML.Adversarial.Tests.Cli.CliTests;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary><c>advml evaluate --method-option METHOD.SETTING=VALUE</c>: per-method budgets reach the attacks; bad ones fail before any work.</summary>
[TestClass]
public sealed class CliMethodOptionTests
{
    private static double Top1(string dir, string file, string method, double epsilon)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, file)));
        return json.RootElement.GetProperty("Rows").EnumerateArray()
            .Single(r => r.GetProperty("Method").GetString() == method && r.GetProperty("Epsilon").GetDouble() == epsilon)
            .GetProperty("Top1").GetDouble();
    }

    [TestMethod]
    public void SquareQueryBudgetIsHonouredEndToEnd()
    {
        string dir = TestData.TempFolder();
        var train = Advml(dir, "train", "-o", "m.advml", "--train-count", "1000", "--rho", "0.25", "--epochs", "1", "--k", "0", "--lr", "0.003");
        Assert.AreEqual(0, train.Code, train.Err);
        string[] Evaluate(string queries, string output) => new[]
        {
            "evaluate", "--model", "m.advml", "--count", "40", "--methods", "square", "--epsilons", "16",
            "--method-option", $"square.queries={queries}", "--method-option", "square.rescale-schedule=true", "-o", output,
        };
        var one = Advml(dir, Evaluate("1", "one.json"));
        Assert.AreEqual(0, one.Code, one.Err);
        var many = Advml(dir, Evaluate("200", "many.json"));
        Assert.AreEqual(0, many.Code, many.Err);
        // One query is Square's initial stripes only; the 199 further random squares fool more (an example stops once fooled).
        double clean = Top1(dir, "one.json", "clean", 0), stripes = Top1(dir, "one.json", "square", 16), searched = Top1(dir, "many.json", "square", 16);
        Assert.AreEqual(clean, Top1(dir, "many.json", "clean", 0), 1e-9, "same images");
        Assert.IsTrue(searched < stripes && searched < clean, $"clean {clean}, 1 query {stripes}, 200 queries {searched}");
    }

    [TestMethod]
    [DataRow("square.queries=0", "square.queries=0': queries takes a whole number >= 1")]
    [DataRow("square.queries=many", "'many' is not one")]
    [DataRow("square.budget=5", "'square' has no setting 'budget'. Its settings: norm, queries, initial-fraction, rescale-schedule")]
    [DataRow("fgsm.queries=5", "method 'fgsm' has no settings of its own")]
    [DataRow("apgd-ce.iterations=5", "method 'apgd-ce' is not among --methods (square, fgsm)")]
    [DataRow("queries=5", "write METHOD.SETTING=VALUE")]
    public void BadMethodOptionsNameTheOptionAndTheValue(string value, string expected)
    {
        string dir = TestData.TempFolder();
        var r = Advml(dir, "evaluate", "--model", "missing.advml", "--methods", "square,fgsm", "--method-option", value);
        Assert.AreEqual(2, r.Code, r.Err);
        StringAssert.Contains(r.Err, $"--method-option '{value}'");
        StringAssert.Contains(r.Err, expected);
    }

    [TestMethod]
    public void ASettingTheMethodNameFixesIsRefused()
    {
        string dir = TestData.TempFolder();
        var r = Advml(dir, "evaluate", "--model", "missing.advml", "--methods", "autoattack", "--method-option", "autoattack.version=quick");
        Assert.AreEqual(2, r.Code, r.Err);
        StringAssert.Contains(r.Err, "always runs with version=standard");
        StringAssert.Contains(r.Err, "autoattack-quick");
        // Accepted settings of the same method pass parsing and fail only later, on the missing model file.
        var ok = Advml(dir, "evaluate", "--model", "missing.advml", "--methods", "autoattack,apgd-ce", "--method-option", "autoattack.square-queries=100",
            "--method-option", "autoattack.fab-iterations=10", "--method-option", "apgd-ce.restarts=2", "--method-option", "apgd-ce.rho=0.5");
        StringAssert.Contains(ok.Err, "missing.advml");
        Assert.IsFalse(ok.Err.Contains("--method-option"), ok.Err);
    }
}
