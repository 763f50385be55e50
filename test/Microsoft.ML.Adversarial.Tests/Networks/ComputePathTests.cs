using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Networks;

/// <summary>
/// The speed paths (issue 16) against the plain path: BatchNorm folding and channels-last are the same function
/// (checked in float64, where rounding cannot hide a difference), bfloat16 stays within the bounds docs/performance.md
/// states, and a replica never runs on stale weights.
/// </summary>
[TestClass]
public sealed class ComputePathTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>Inception v3 at rho 0.25 on 75 x 75 with BatchNorm statistics far from the identity (else folding changes nothing).</summary>
    private static InceptionV3 SmallInception(ScalarType dtype)
    {
        manual_seed(3);
        var model = new InceptionV3(classes: 10, rho: 0.25, auxLogits: false, dropout: 0);
        using (no_grad())
            foreach (var (name, b) in model.named_buffers())
            {
                if (name.EndsWith("running_mean", StringComparison.Ordinal)) b.copy_(randn_like(b) * 0.2);
                if (name.EndsWith("running_var", StringComparison.Ordinal)) b.copy_(rand_like(b) + 0.5);
            }
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.EndsWith("bn.weight", StringComparison.Ordinal)) p.copy_(rand_like(p) + 0.5);
        model.to(dtype);
        model.eval();
        return model;
    }

    private static Tensor InputGradient(nn.Module<Tensor, Tensor> model, Tensor x, Tensor y)
    {
        var input = x.detach().requires_grad_(true);
        var loss = nn.functional.cross_entropy(model.call(input), y, reduction: nn.Reduction.Sum);
        return autograd.grad(new[] { loss }, new[] { input })[0];
    }

    private static double Relative(Tensor a, Tensor b) => ((a - b).abs().max() / b.abs().max()).to(ScalarType.Float64).item<double>();

    [TestMethod]
    public void BatchNormFoldingAndChannelsLastGiveTheSameLogitsAndInputGradients()
    {
        using var scope = NewDisposeScope();
        var model = SmallInception(ScalarType.Float64);
        var x = rand(4, 3, 75, 75, dtype: ScalarType.Float64);
        var y = randint(0, 10, new long[] { 4 });
        Tensor plainLogits;
        using (no_grad()) plainLogits = model.call(x);
        var plainGradient = InputGradient(model, x, y);
        foreach (var options in new[] { new ComputeOptions { ChannelsLast = false }, ComputeOptions.Default })
        {
            using var prepared = ComputeModel.Create(model, options);
            Assert.IsTrue(prepared.IsFolded, $"{options}: Inception's BatchNorms fold");
            Tensor logits;
            using (no_grad()) logits = prepared.call(x);
            var gradient = InputGradient(prepared, x, y);
            TestContext.WriteLine($"{options}: logits {Relative(logits, plainLogits):E2}, input gradient {Relative(gradient, plainGradient):E2}");
            Assert.IsTrue(Relative(logits, plainLogits) < 1e-10, $"{options}: logits differ by {Relative(logits, plainLogits):E2} (relative)");
            Assert.IsTrue(Relative(gradient, plainGradient) < 1e-10, $"{options}: input gradients differ by {Relative(gradient, plainGradient):E2} (relative)");
        }

        // fp32: the bound, 1e-5 relative, on the logits (gradients of a random network are dominated by rounding
        // near ReLU kinks in fp32, where even the thread count moves them: the float64 check above is the exact one).
        var model32 = SmallInception(ScalarType.Float32);
        var x32 = x.to(ScalarType.Float32);
        using var folded32 = ComputeModel.Create(model32, ComputeOptions.Default);
        using (no_grad())
            Assert.IsTrue(Relative(folded32.call(x32), model32.call(x32)) < 1e-5, "fp32 folded logits within 1e-5 relative");
    }

    [TestMethod]
    public void AttacksOnTheFastPathFollowTheMastersWeightsAfterEveryChange()
    {
        using var scope = NewDisposeScope();
        var model = SmallInception(ScalarType.Float64);
        var x = rand(4, 3, 75, 75, dtype: ScalarType.Float64);
        var y = randint(0, 10, new long[] { 4 });
        var fast = Attacks.Fgsm(16);
        var plain = AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = 16, Compute = ComputeOptions.Plain });
        for (int round = 0; round < 3; round++)
        {
            var a = fast.Generate(model, x, y);
            var b = plain.Generate(model, x, y);
            Assert.IsTrue(a.is_contiguous(), "attack results are contiguous whatever layout the model ran in");
            Assert.AreEqual(0.0, a.sub(b).abs().max().item<double>(), 1e-12, $"round {round}: the fast path equals the plain path");
            // Change the master (as a training step does): the cached replica must not keep the old weights or statistics.
            using (no_grad())
            {
                foreach (var p in model.parameters()) p.mul_(1.0 + 0.3 * (round + 1)).add_(0.01);
                foreach (var (name, b2) in model.named_buffers()) if (name.EndsWith("running_mean", StringComparison.Ordinal)) b2.add_(0.1);
            }
        }
    }

    [TestMethod]
    public void AReplicaMadeWhileScoringUnderInferenceModeStillServesAttacks()
    {
        using var scope = NewDisposeScope();
        var model = SmallInception(ScalarType.Float32);
        var x = rand(2, 3, 75, 75);
        var y = tensor(new long[] { 1, 2 });
        // ML.NET scoring runs under inference_mode and is the first to build the folded replica; tensors made there
        // could not be saved for backward, so the attack after it would fail if the replica's weights were made there.
        using (inference_mode())
            ComputeModel.For(model, ComputeOptions.Default, evaluationOnly: true)!.call(x);
        var adv = Attacks.Fgsm(8).Generate(model, x, y);
        Assert.AreEqual(8.0 / 255, adv.sub(x).abs().max().item<float>(), 1e-6);
    }

    [TestMethod]
    public void ConcurrentAttacksOnOneModelShareItsReplicaSafely()
    {
        var model = SmallInception(ScalarType.Float32);
        Tensor x = rand(2, 3, 75, 75), y = tensor(new long[] { 1, 2 });
        var expected = Attacks.Fgsm(8).Generate(model, x, y);
        // Each call syncs (and refolds) the shared replica while the other thread may be running on it.
        var errors = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, 2, _ =>
        {
            var fgsm = Attacks.Fgsm(8);
            for (int i = 0; i < 6; i++)
            {
                using var scope = NewDisposeScope();
                var adv = fgsm.Generate(model, x, y);
                double agree = adv.eq(expected).to(ScalarType.Float32).mean().item<float>();
                if (agree < 0.999) errors.Add($"call {i}: only {agree:P2} of the values equal the single-threaded result");
            }
        });
        Assert.AreEqual(0, errors.Count, string.Join("; ", errors));
    }

    [TestMethod]
    public void ChannelsLastOnlyReordersImageBatches()
    {
        using var scope = NewDisposeScope();
        var rgb = rand(2, 3, 5, 7);
        var cl = ComputeModel.ToChannelsLast(rgb);
        CollectionAssert.AreEqual(new long[] { 3 * 5 * 7, 1, 7 * 3, 3 }, cl.stride(), "NHWC strides");
        Assert.IsTrue(cl.eq(rgb).all().item<bool>(), "same values");
        var grey = rand(2, 1, 5, 7);
        Assert.AreSame(grey, ComputeModel.ToChannelsLast(grey), "a 1-channel batch is left as it is");
        var flat = rand(2, 10);
        Assert.AreSame(flat, ComputeModel.ToChannelsLast(flat));
    }

    [TestMethod]
    public void ACustomModuleRunsAsItIsAndBFloat16AsksForAReplicaFactory()
    {
        using var scope = NewDisposeScope();
        manual_seed(1);
        // A custom network that view()s its input: it would fail on channels-last input, so it must get its own layout.
        var custom = new ViewingNet();
        custom.eval();
        var x = rand(2, 3, 8, 8);
        var y = tensor(new long[] { 0, 1 });
        var adv = Attacks.Fgsm(8).Generate(custom, x, y);
        Assert.AreEqual(8.0 / 255, adv.sub(x).abs().max().item<float>(), 1e-6, "FGSM ran on the custom module");

        var bf16 = AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = 8, Compute = ComputeOptions.BFloat16 });
        var error = Assert.ThrowsExactly<NotSupportedException>(() => bf16.Generate(custom, x, y));
        StringAssert.Contains(error.Message, "replicaFactory");
        StringAssert.Contains(error.Message, "Float32");

        using var prepared = ComputeModel.Create(custom, new ComputeOptions { Precision = ComputePrecision.BFloat16, ChannelsLast = false }, replicaFactory: () => new ViewingNet());
        Tensor logits, reference;
        using (no_grad()) { logits = prepared.call(x); reference = custom.call(x); }
        Assert.AreEqual(ScalarType.Float32, logits.dtype, "logits come back in fp32");
        Assert.IsTrue(Relative(logits, reference) < 0.02, $"bf16 logits within 2% of fp32 (got {Relative(logits, reference):E2})");
    }

    private sealed class ViewingNet : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Conv2d conv = nn.Conv2d(3, 4, 3, padding: 1);
        private readonly TorchSharp.Modules.Linear fc = nn.Linear(4 * 8 * 8, 2);

        public ViewingNet() : base(nameof(ViewingNet)) => RegisterComponents();

        public override Tensor forward(Tensor x) => fc.call(nn.functional.relu(conv.call(x)).view(-1, 4 * 8 * 8));
    }

    [TestMethod]
    public void BFloat16AttacksStayWithinTheDocumentedBounds()
    {
        using var scope = NewDisposeScope();
        var model = TrainedModels.SmallCnn;
        var (x, y) = TrainedModels.EvalBatch(256);
        foreach (double eps in new[] { 8.0, 16.0 })
        {
            var fp32 = AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = eps });
            var bf16 = AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = eps, Compute = ComputeOptions.BFloat16 });
            var a32 = fp32.Generate(model, x, y);
            var a16 = bf16.Generate(model, x, y);
            Assert.AreEqual(ScalarType.Float32, a16.dtype);
            double radius = (a16 - x).abs().max().item<float>();
            Assert.IsTrue(radius <= eps / 255 + 1e-6, $"eps ball: {radius}");
            Assert.IsTrue(a16.min().item<float>() >= 0 && a16.max().item<float>() <= 1, "input range");
            // Signs of the perturbation that differ, among pixels both moved (pixels clipped at 0 or 1 excluded).
            var s32 = (a32 - x).sign();
            var s16 = (a16 - x).sign();
            var both = s32.ne(0).logical_and(s16.ne(0));
            double differing = s32.ne(s16).logical_and(both).sum().item<long>() / (double)both.sum().item<long>();
            double acc32 = TrainedModels.Accuracy(model, a32, y), acc16 = TrainedModels.Accuracy(model, a16, y);
            TestContext.WriteLine($"eps {eps}: signs differing {differing:P2}; accuracy under FGSM fp32 {acc32:P1}, bf16 {acc16:P1}");
            Assert.IsTrue(differing < 0.05, $"eps {eps}: {differing:P2} of the perturbation signs differ from fp32 (bound 5%)");
            Assert.IsTrue(Math.Abs(acc32 - acc16) <= 0.02, $"eps {eps}: accuracy under attack fp32 {acc32:P1} vs bf16 {acc16:P1} (bound 2 points on 256 images)");
        }
    }

    [TestMethod]
    public void BFloat16TrainingUpdatesTheFp32MasterWeights()
    {
        using var scope = NewDisposeScope();
        var data = TestData.Train(1024);
        var (x, y) = TrainedModels.EvalBatch(256);
        double Train(ComputeOptions compute, out SmallCnn model)
        {
            manual_seed(5);
            model = new SmallCnn(rho: 0.5);
            var options = new AdversarialTrainingOptions { BatchSize = 32, AdversarialPerBatch = 16, MaxSteps = 60, Compute = compute, Seed = 5, ProgressEvery = 1000 };
            new AdversarialTrainer(options).Train(model, data);
            return TrainedModels.Accuracy(model, x, y);
        }
        double acc32 = Train(ComputeOptions.Default, out var m32);
        double acc16 = Train(ComputeOptions.BFloat16, out var m16);
        TestContext.WriteLine($"clean accuracy after 60 steps: fp32 {acc32:P1}, bf16 {acc16:P1}");
        Assert.IsTrue(m16.parameters().All(p => p.dtype == ScalarType.Float32), "master weights stay fp32");
        Assert.IsTrue(acc16 > 0.3, $"bf16 training learns (clean accuracy {acc16:P1} after 60 steps; chance is 10%)");
        double moved = m16.parameters().Zip(m32.parameters()).Max(t => (t.First - t.Second).abs().max().item<float>());
        Assert.IsTrue(moved > 0, "the bf16 run took its own path (its weights differ from the fp32 run's)");
        Assert.IsTrue(Math.Abs(acc32 - acc16) <= 0.08, $"bf16 training close to fp32: {acc16:P1} vs {acc32:P1}");
    }
}
