using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Networks;

/// <summary>
/// The run-time check of the fast path, shown working by fault injection (a test-only hook makes one layer compute a
/// wrong result on channels-last input, as oneDNN's defective 1x1 kernel does on some AVX-512 CPUs): the check finds the
/// layer, runs it in the plain layout, warns once naming it, remembers the verdict, and results equal the plain path.
/// Without the check (<see cref="ComputeOptions.VerifyFastPath"/> false) the same fault reaches the results.
/// </summary>
[TestClass]
public sealed class FastPathCheckTests
{
    private const string FaultyLayer = "Conv2d_3b_1x1";
    private static readonly ModelSpec Inception = new(ModelArchitecture.InceptionV3, Rho: 0.25);
    private readonly List<string> _warnings = new();

    public TestContext TestContext { get; set; } = null!;

    [TestInitialize]
    public void Start()
    {
        FastPathCheck.Forget();
        FastPathCheck.Warned += _warnings.Add;
    }

    [TestCleanup]
    public void Stop()
    {
        FastPathCheck.Warned -= _warnings.Add;
        FastPathCheck.InjectedFaultLayer = null;
        FastPathCheck.InjectedFaultAnyLayout = false;
        FastPathCheck.Forget();
    }

    private static (Tensor X, Tensor Y) Batch(int count = 4) => (RealShapes.Images(count, 75), tensor(new long[] { 1, 5, 9, 3 }[..count]));

    [TestMethod]
    public void ALayerWrongOnChannelsLastRunsInThePlainLayoutWithOneWarning()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Batch();
        FastPathCheck.InjectedFaultLayer = FaultyLayer;
        var model = RealShapes.Network(Inception, x);

        double unchecked_ = RealShapes.FgsmSignsDiffering(model, ComputeOptions.Default with { VerifyFastPath = false }, x, y).Fast;
        Assert.IsTrue(unchecked_ > 0.05, $"the injected fault reaches FGSM without the check ({unchecked_:P2} of the pixels differ)");
        Assert.AreEqual(0, _warnings.Count, "no check, no warning");

        var logits = RealShapes.LogitDifference(model, ComputeOptions.Default, x);
        var signs = RealShapes.FgsmSignsDiffering(model, ComputeOptions.Default, x, y);
        TestContext.WriteLine(string.Join("\n", _warnings));
        // Equal up to fp32 rounding: within 10 times what the plain path does to itself on an input moved by a few ulps.
        Assert.IsTrue(logits.Fast <= Math.Max(1e-4, 10 * logits.Floor), $"logits equal the plain path's after the fallback ({logits.Fast:E2}, floor {logits.Floor:E2})");
        Assert.IsTrue(signs.Fast <= Math.Max(0.002, 10 * signs.Floor), $"FGSM equals the plain path's after the fallback ({signs.Fast:P3} of the signs differ, floor {signs.Floor:P3})");

        var verdict = FastPathCheck.All.Single(v => !v.Training && v.Options == ComputeOptions.Default);
        Assert.AreEqual(FastPathOutcome.LayersInPlainLayout, verdict.Outcome);
        CollectionAssert.AreEqual(new[] { FaultyLayer }, verdict.PlainLayoutLayers.ToArray(), "only the faulty layer leaves the fast layout");
        Assert.IsTrue(verdict.FirstGradientDifference > 0.1 && verdict.GradientDifference < 0.05, $"{verdict.FirstGradientDifference} then {verdict.GradientDifference}");
        Assert.AreEqual(1, _warnings.Count, "one warning line, at the first pass; the verdict is remembered");
        StringAssert.Contains(_warnings[0], FaultyLayer);
        StringAssert.Contains(_warnings[0], FastPathCheck.Cpu);
        StringAssert.Contains(_warnings[0], "VerifyFastPath = false");
        StringAssert.Contains(_warnings[0], "[4, 3, 75, 75]");

        // Another network of the same architecture: the verdict is recalled (no second check, no second warning) and applied.
        var second = RealShapes.Network(Inception, x, seed: 12);
        var recalled = RealShapes.FgsmSignsDiffering(second, ComputeOptions.Default, x, y);
        Assert.IsTrue(recalled.Fast <= Math.Max(0.002, 10 * recalled.Floor), $"the recalled verdict is applied ({recalled.Fast:P3} of the signs differ, floor {recalled.Floor:P3})");
        Assert.AreEqual(1, _warnings.Count);
    }

    [TestMethod]
    public void AFaultThePlainLayoutCannotCureSendsThePassesToThePlainPath()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Batch();
        FastPathCheck.InjectedFaultLayer = FaultyLayer;
        FastPathCheck.InjectedFaultAnyLayout = true; // wrong on the folded replica in any layout
        var model = RealShapes.Network(Inception, x);
        double pixels = RealShapes.FgsmSignsDiffering(model, ComputeOptions.Default, x, y).Fast;
        var verdict = FastPathCheck.All.Single(v => !v.Training);
        Assert.AreEqual(FastPathOutcome.PlainPath, verdict.Outcome, verdict.ToString());
        Assert.AreEqual(0.0, pixels, "the plain path runs: FGSM is the plain path's, pixel for pixel");
        Assert.AreEqual(1, _warnings.Count);
        StringAssert.Contains(_warnings[0], "plain path");
    }

    [TestMethod]
    public void TrainingPassesAreCheckedAndFallBackToo()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Batch();
        FastPathCheck.InjectedFaultLayer = FaultyLayer;
        var model = RealShapes.Network(Inception, x);
        var (update, floor) = RealShapes.TrainingGradientDifference(model, ComputeOptions.Default, x, y);
        var training = FastPathCheck.All.Single(v => v.Training);
        TestContext.WriteLine($"training gradients differ by {update:E2} (floor {floor:E2}); {training}");
        Assert.AreNotEqual(FastPathOutcome.Agrees, training.Outcome, "the fault in the training pass is found");
        Assert.IsTrue(update < 0.1, $"a training pass's gradients equal the plain path's after the fallback (differ by {update:E2})");
        Assert.AreEqual(1, _warnings.Count);
    }

    [TestMethod]
    public void APathThatAgreesRunsAsAskedAndTheCheckLeavesNoTrace()
    {
        using var scope = NewDisposeScope();
        var (x, y) = Batch();
        var model = RealShapes.Network(Inception, x);
        var first = AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = 16 }).Generate(model, x, y);
        var trusting = AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = 16, Compute = ComputeOptions.Default with { VerifyFastPath = false } }).Generate(model, x, y);
        Assert.AreEqual(0.0, first.sub(trusting).abs().max().item<float>(), "an agreeing check changes nothing in what runs");
        // A seeded training step (attack, training pass, update) is the same with and without the check: BatchNorm
        // statistics and the random stream are restored after it.
        double step = RealShapes.TrainingStepDifference(Inception, ComputeOptions.Default, ComputeOptions.Default with { VerifyFastPath = false }, x, y);
        TestContext.WriteLine(string.Join("\n", FastPathCheck.All));
        Assert.AreEqual(0.0, step, "the same update with and without the check");
        Assert.AreEqual(0, _warnings.Count);
        Assert.IsTrue(FastPathCheck.All.All(v => v.Agrees), string.Join("; ", FastPathCheck.All));
    }
}
