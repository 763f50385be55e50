using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>Issue 27, item 6: the intervals in evaluate's JSON and CSV are Wilson score intervals, as the tables and reports say.</summary>
[TestClass]
public sealed class CliIntervalTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>The Wilson 95% score interval, written out here independently of the library's.</summary>
    private static (double Low, double High) Wilson(int successes, int n)
    {
        const double z = 1.959963984540054;
        double p = (double)successes / n, d = 1 + z * z / n;
        double centre = (p + z * z / (2 * n)) / d, half = z * Math.Sqrt(p * (1 - p) / n + z * z / (4.0 * n * n)) / d;
        return (Math.Max(0, centre - half), Math.Min(1, centre + half));
    }

    [TestMethod]
    public void EvaluateWritesWilsonIntervalsToJsonAndCsv()
    {
        string dir = TestData.TempFolder();
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        TorchSharp.torch.manual_seed(1);
        using (var model = spec.Create(10, (1, 28, 28)))
            ModelIO.Save(model, new ModelDescription(spec, 10, 1, 28, 28, FashionMnist.ClassNames.ToArray()), Path.Combine(dir, "m.advml"));
        foreach (var file in new[] { "eval.json", "eval.csv" })
        {
            var r = CliTests.Advml(dir, "evaluate", "--model", "m.advml", "--count", "20", "--methods", "fgsm", "--epsilons", "4", "-o", file);
            Assert.AreEqual(0, r.Code, r.Err);
        }
        using var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json")));
        var rows = json.RootElement.GetProperty("Rows").EnumerateArray().ToList();
        var csv = File.ReadAllLines(Path.Combine(dir, "eval.csv"));
        var header = csv[0].Split(',').ToList();
        TestContext.WriteLine(string.Join("\n", csv));
        Assert.AreEqual(rows.Count, csv.Length - 1);
        for (int i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            var cells = csv[i + 1].Split(',');
            int n = row.GetProperty("Count").GetInt32();
            foreach (var k in new[] { "Top1", "Top5" })
            {
                double rate = row.GetProperty(k).GetDouble();
                var (low, high) = Wilson((int)Math.Round(rate * n), n);
                Assert.IsTrue(row.TryGetProperty(k + "Low", out var l), $"JSON row {i} has no Wilson bound {k}Low: {row}");
                Assert.IsTrue(row.TryGetProperty(k + "High", out var h), $"JSON row {i} has no Wilson bound {k}High: {row}");
                Assert.AreEqual(low, l.GetDouble(), 1e-12, $"{k}Low of row {i}");
                Assert.AreEqual(high, h.GetDouble(), 1e-12, $"{k}High of row {i}");
                Assert.IsTrue(header.Contains(k + "Low") && header.Contains(k + "High"), "CSV header: " + csv[0]);
                Assert.AreEqual(low, double.Parse(cells[header.IndexOf(k + "Low")], CultureInfo.InvariantCulture), 1e-12);
                Assert.AreEqual(high, double.Parse(cells[header.IndexOf(k + "High")], CultureInfo.InvariantCulture), 1e-12);
            }
            // No normal-approximation half-width beside them: one interval, one formula.
            Assert.IsFalse(row.TryGetProperty("Top1Ci95", out _), "the normal-approximation Top1Ci95 is gone");
        }
    }
}
