using Microsoft.ML.Adversarial.Evaluation;

namespace Microsoft.ML.Adversarial.Tests.Evaluation;

/// <summary>Issue 27, item 6: the one interval (Wilson 95%) at its edges, and in the rows every file is written from.</summary>
[TestClass]
public sealed class WilsonTests
{
    [TestMethod]
    public void EdgesZeroAndAllSuccessesOneAndNoExample()
    {
        // 0 of n: [0, z^2 / (n + z^2)]; n of n: [n / (n + z^2), 1]. Neither collapses to a point.
        const double z2 = Wilson.Z95 * Wilson.Z95;
        foreach (int n in new[] { 1, 2, 10, 1000 })
        {
            var none = Wilson.Interval(0, n);
            Assert.AreEqual(0, none.Low);
            Assert.AreEqual(z2 / (n + z2), none.High, 1e-12, $"0 of {n}");
            var all = Wilson.Interval(n, n);
            Assert.AreEqual(1, all.High);
            Assert.AreEqual(n / (n + z2), all.Low, 1e-12, $"{n} of {n}");
        }
        // n = 1: one example says little either way ([0, 0.79] and [0.21, 1]).
        Assert.AreEqual(0.7935, Wilson.Interval(0, 1).High, 1e-4);
        Assert.AreEqual(0.2065, Wilson.Interval(1, 1).Low, 1e-4);
        // n = 0: no interval, not an exception.
        Assert.IsTrue(double.IsNaN(Wilson.Interval(0, 0).Low) && double.IsNaN(Wilson.Interval(0, 0).High));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Wilson.Interval(3, 2));
    }

    [TestMethod]
    public void RowsCarryTheWilsonIntervalInJsonAndCsv()
    {
        var perfect = new AccuracyRow("m", "clean", 0, 100, 1.0, 1.0, 1);
        Assert.AreEqual((Wilson.Interval(100, 100).Low, 1.0), (perfect.Top1Low, perfect.Top1High));
        Assert.IsTrue(perfect.Top1Low < 0.97, "100 of 100 is not 100% +- 0");
        var empty = new AccuracyRow("m", "fgsm", 4, 0, double.NaN, double.NaN, double.NaN);
        Assert.IsTrue(double.IsNaN(empty.Top1Low) && double.IsNaN(empty.Top5High));
        var report = new RobustnessReport { Model = "m", Rows = new[] { perfect, empty }, LabelLeaks = Array.Empty<LabelLeakRow>(), Warnings = Array.Empty<string>() };
        StringAssert.Contains(report.ToCsv(), "Top1Low");
        StringAssert.Contains(report.ToJson(), "\"Top5High\"");
        StringAssert.Contains(report.ToString(), "100.0 [96.3, 100.0]");
        var transfer = new TransferRow("A", "B", "fgsm", 4, 10, 0.5, 0.9, 1, 1.0, 0.5);
        Assert.AreEqual(Wilson.Interval(1, 1), (transfer.TransferRateLow, transfer.TransferRateHigh), "transfer rate over the 1 example that fooled the source");
        Assert.AreEqual(Wilson.Interval(5, 10), (transfer.ErrorRateLow, transfer.ErrorRateHigh));
    }
}
