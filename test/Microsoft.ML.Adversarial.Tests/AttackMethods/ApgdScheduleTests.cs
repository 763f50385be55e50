using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>
/// APGD's step-size schedule (Croce and Hein 2020, section 3.2): at a checkpoint, an example halves its step size when
/// its loss rose on at most rho of the steps since the last one, or when it kept its step size there and its best loss
/// has not risen since. Issue 28: the count of rising steps was summed over the whole window into one byte, so no
/// example was ever halved for oscillating, and ours left more images robust than the reference AutoAttack.
/// </summary>
[TestClass]
public sealed class ApgdScheduleTests
{
    [TestMethod]
    public void AnOscillatingLossHalvesTheStepAndASteadilyRisingOneKeepsIt()
    {
        const int k = 8;
        // Columns: rising on every step; rising on 4 of 8 steps (oscillating); rising on 6 of 8 (exactly rho = 0.75: halved).
        var rows = new List<float[]>();
        for (int s = 0; s <= k; s++)
            rows.Add(new[] { 1f + s, 1f + (s % 2) + s * 0.01f, s is 3 or 6 ? 0f : 1f + s });
        var window = tensor(rows.SelectMany(r => r).ToArray(), new long[] { k + 1, 3 });
        var none = zeros(3, dtype: ScalarType.Bool);
        var best = tensor(new[] { 9f, 2f, 9f });
        var halve = Apgd.HalveAtCheckpoint(window, k, 0.75, halvedAtLastCheck: ones(3, dtype: ScalarType.Bool), bestAtLastCheck: best, bestLoss: best);
        CollectionAssert.AreEqual(new[] { false, true, true }, halve.data<bool>().ToArray(), "rising steps 8, 4 and 6 of 8, rho 0.75");

        // Kept at the last checkpoint and no better since: halved however steadily the loss rose.
        var stalled = Apgd.HalveAtCheckpoint(window, k, 0.75, halvedAtLastCheck: none, bestAtLastCheck: best, bestLoss: best);
        CollectionAssert.AreEqual(new[] { true, true, true }, stalled.data<bool>().ToArray());
        var improved = Apgd.HalveAtCheckpoint(window, k, 0.75, halvedAtLastCheck: none, bestAtLastCheck: best, bestLoss: best + 1);
        CollectionAssert.AreEqual(new[] { false, true, true }, improved.data<bool>().ToArray());
    }
}
