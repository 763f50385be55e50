using Microsoft.ML.Adversarial.Cli.Commands;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>Issue 14: one default optimiser (Adam 1e-3), the paper's Inception v3 preset, TF-style RMSProp, label smoothing, clipping, lr decay.</summary>
[TestClass]
public sealed class TrainingDefaultsTests
{
    [TestMethod]
    public void DefaultOptimiserIsAdamAtOneEMinusThreeInCoreMLNetAndCli()
    {
        var core = new AdversarialTrainingOptions();
        Assert.AreEqual(OptimizerKind.Adam, core.Optimizer);
        Assert.AreEqual(1e-3, core.LearningRate);
        Assert.AreEqual(0.0, core.GradientClipNorm);
        Assert.AreEqual(0.0, core.LabelSmoothing);
        Assert.AreEqual(0, core.LearningRateDecayEpochs);
        var mlnet = new AdversarialTrainingEstimator.Options();
        Assert.AreEqual(OptimizerKind.Adam, mlnet.Optimizer);
        Assert.AreEqual(1e-3, mlnet.LearningRate);
        var cli = TrainCommand.TrainingOptions(TrainCommand.Create().Parse("-o model.advml"));
        Assert.AreEqual(OptimizerKind.Adam, cli.Optimizer);
        Assert.AreEqual(1e-3, cli.LearningRate);
        using var model = nn.Linear(4, 2);
        Assert.IsInstanceOfType<HeldScalarAdam>(new AdversarialTrainer(core).CreateOptimizer(model));
    }

    [TestMethod]
    public void PaperPresetHasTheDocumentedSettingsInCoreMLNetAndCli()
    {
        var cliParse = TrainCommand.Create().Parse("-o model.advml --preset paper-inception-v3 --epochs 3");
        var cli = TrainCommand.TrainingOptions(cliParse);
        foreach (var o in new AdversarialTrainingOptions[] { AdversarialTrainingOptions.PaperInceptionV3(), AdversarialTrainingEstimator.Options.PaperInceptionV3(), cli })
        {
            Assert.AreEqual(OptimizerKind.TensorFlowRmsProp, o.Optimizer);
            Assert.AreEqual(0.045, o.LearningRate);
            Assert.AreEqual(0.9, o.RmsPropDecay);
            Assert.AreEqual(1.0, o.RmsPropEpsilon);
            Assert.AreEqual(0.9, o.Momentum);
            Assert.AreEqual(4e-5, o.WeightDecay);
            Assert.AreEqual(0.94, o.LearningRateDecay);
            Assert.AreEqual(2, o.LearningRateDecayEpochs);
            Assert.AreEqual(0.1, o.LabelSmoothing);
            Assert.AreEqual(2.0, o.GradientClipNorm);
            Assert.AreEqual(32, o.BatchSize);
            Assert.AreEqual(16, o.AdversarialPerBatch);
            Assert.AreEqual(0.3, o.AdversarialLossWeight);
            Assert.AreEqual("step-ll", o.Method);
            Assert.AreSame(EpsilonDistribution.Paper, o.Epsilon);
            o.Validate();
        }
        Assert.AreEqual(3, cli.Epochs);
        // Options given on the command line override the preset; the rest stay the preset's.
        var overridden = TrainCommand.TrainingOptions(TrainCommand.Create().Parse("-o model.advml --preset paper-inception-v3 --lr 0.01 --optimizer adam"));
        Assert.AreEqual(0.01, overridden.LearningRate);
        Assert.AreEqual(OptimizerKind.Adam, overridden.Optimizer);
        Assert.AreEqual(0.1, overridden.LabelSmoothing);
        Assert.IsInstanceOfType<AdversarialTrainingEstimator.Options>(AdversarialTrainingEstimator.Options.PaperInceptionV3());
    }

    /// <summary>p = [1, -2], loss = 0.5 p0 - 3 p1 (gradient [0.5, -3]), lr 0.045, decay 0.9, momentum 0.9, eps 1.</summary>
    [TestMethod]
    public void TensorFlowRmsPropMatchesHandComputedUpdatesAndDiffersFromTorchs()
    {
        double[] g = { 0.5, -3.0 }, p = { 1.0, -2.0 };
        const double lr = 0.045, decay = 0.9, momentum = 0.9, eps = 1.0;
        // By hand, TensorFlow's ApplyRMSProp: ms starts at 1; mom = momentum mom + lr g / sqrt(ms + eps); p -= mom.
        double[] ms = { 1, 1 }, mom = { 0, 0 }, expected1 = new double[2], expected2 = new double[2], hand = (double[])p.Clone();
        for (int step = 1; step <= 2; step++)
            for (int i = 0; i < 2; i++)
            {
                ms[i] = decay * ms[i] + (1 - decay) * g[i] * g[i];
                mom[i] = momentum * mom[i] + lr * g[i] / Math.Sqrt(ms[i] + eps);
                hand[i] -= mom[i];
                (step == 1 ? expected1 : expected2)[i] = hand[i];
            }
        // First step worked out: ms = [0.925, 1.8], so p0 = 1 - 0.045 * 0.5 / sqrt(1.925).
        Assert.AreEqual(1 - 0.045 * 0.5 / Math.Sqrt(1.925), expected1[0], 1e-15);

        var (tf1, tf2) = TwoSteps(w => new TensorFlowRmsProp(new[] { w }, lr, decay, eps, weightDecay: 0, momentum));
        var (torch1, _) = TwoSteps(w => new HeldScalarRmsProp(new[] { w }, lr, decay, eps, weightDecay: 0, momentum));
        for (int i = 0; i < 2; i++)
        {
            Assert.AreEqual(expected1[i], tf1[i], 1e-6, $"first update, element {i}");
            Assert.AreEqual(expected2[i], tf2[i], 1e-6, $"second update, element {i}");
            // PyTorch's RMSProp (ms from 0, eps outside the root) takes a different first step: 0.5 / (sqrt(0.025) + 1) vs 0.5 / sqrt(1.925).
            double tfStep = p[i] - tf1[i], torchStep = p[i] - torch1[i];
            Assert.IsTrue(Math.Abs(torchStep - tfStep) > 0.1 * Math.Abs(tfStep), $"element {i}: TF step {tfStep}, torch step {torchStep} should differ by > 10%");
        }
        Assert.AreEqual(0.045 * 0.5 / (Math.Sqrt(0.025) + 1), p[0] - torch1[0], 1e-6);

        static (float[], float[]) TwoSteps(Func<Parameter, OptimizerHelper> make)
        {
            using var scope = NewDisposeScope();
            var w = new Parameter(tensor(new[] { 1f, -2f }));
            var c = tensor(new[] { 0.5f, -3f });
            using var optimizer = make(w);
            var after = new float[2][];
            for (int step = 0; step < 2; step++)
            {
                optimizer.zero_grad();
                w.mul(c).sum().backward();
                optimizer.step();
                after[step] = w.detach().data<float>().ToArray();
            }
            return (after[0], after[1]);
        }
    }

    [TestMethod]
    public void LabelSmoothedLossOfATrainingStepMatchesHandComputation()
    {
        var data = TestData.Train(32);
        const double smoothing = 0.1;
        var trainer = new AdversarialTrainer(new AdversarialTrainingOptions { AdversarialPerBatch = 0, LabelSmoothing = smoothing, Optimizer = OptimizerKind.Sgd, LearningRate = 1e-9 });
        manual_seed(5);
        using var model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10));
        using var scope = NewDisposeScope();
        var (x, y) = data.ToTensors(Enumerable.Range(0, 32).ToArray());
        float[] logits;
        using (no_grad()) logits = model.call(x).data<float>().ToArray();
        long[] labels = y.data<long>().ToArray();
        // (1 - s) * (-log p_y) + s * mean_j (-log p_j), with K = 10 classes: the target is (1 - s) one-hot + s / K.
        double expected = 0, expectedPlain = 0;
        for (int r = 0; r < 32; r++)
        {
            var row = logits.AsSpan(r * 10, 10).ToArray().Select(v => (double)v).ToArray();
            double max = row.Max(), logSum = max + Math.Log(row.Sum(v => Math.Exp(v - max)));
            double nllTrue = logSum - row[labels[r]], nllMean = row.Average(v => logSum - v);
            expected += (1 - smoothing) * nllTrue + smoothing * nllMean;
            expectedPlain += nllTrue;
        }
        expected /= 32;
        expectedPlain /= 32;
        var stats = trainer.Step(model, trainer.CreateOptimizer(model), x, y, 0);
        Assert.AreEqual(expected, stats.Loss, 1e-5);
        var plain = new AdversarialTrainer(new AdversarialTrainingOptions { AdversarialPerBatch = 0, Optimizer = OptimizerKind.Sgd, LearningRate = 1e-9 });
        Assert.AreEqual(expectedPlain, plain.Step(model, plain.CreateOptimizer(model), x, y, 0).Loss, 1e-5); // lr 1e-9: the same weights
        Assert.IsTrue(Math.Abs(expectedPlain - expected) > 1e-3, "smoothing changes the loss");
    }

    [TestMethod]
    public void GradientClippingBoundsTheGlobalNormAndKeepsTheDirection()
    {
        manual_seed(2);
        using var model = nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 5));
        using var scope = NewDisposeScope();
        var x = randn(16, 20);
        model.call(x).pow(2).sum().mul(100).backward();
        var before = model.parameters().Select(p => p.grad!.clone()).ToArray();
        double norm = AdversarialTrainer.ClipGradientNorm(model.parameters(), 2.0);
        Assert.IsTrue(norm > 2.0, $"the test needs a gradient norm above 2 (got {norm})");
        var after = model.parameters().Select(p => p.grad!).ToArray();
        double clipped = Math.Sqrt(after.Sum(g => g.to(ScalarType.Float64).pow(2).sum().item<double>()));
        Assert.AreEqual(2.0, clipped, 1e-5);
        for (int i = 0; i < after.Length; i++)
            Assert.IsTrue(after[i].allclose(before[i].mul(2.0 / norm), rtol: 1e-5, atol: 1e-7), "every gradient is scaled by the same factor");
        // Below the bound nothing changes.
        var small = after.Select(g => g.clone()).ToArray();
        Assert.AreEqual(2.0, AdversarialTrainer.ClipGradientNorm(model.parameters(), 5.0), 1e-5);
        for (int i = 0; i < after.Length; i++) Assert.IsTrue(after[i].equal(small[i]).all().item<bool>());
    }

    [TestMethod]
    public void TrainerClipsTheUpdateAndDecaysTheLearningRateEveryTwoEpochs()
    {
        var data = TestData.Train(32);
        // SGD with lr 1: the update is the (clipped) gradient, so its norm is the clip bound.
        double UpdateNorm(double clip)
        {
            manual_seed(4);
            using var model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10));
            var trainer = new AdversarialTrainer(new AdversarialTrainingOptions { AdversarialPerBatch = 0, Optimizer = OptimizerKind.Sgd, LearningRate = 1, GradientClipNorm = clip });
            using var scope = NewDisposeScope();
            var before = model.parameters().Select(p => p.detach().clone()).ToArray();
            var (x, y) = data.ToTensors(Enumerable.Range(0, 32).ToArray());
            trainer.Step(model, trainer.CreateOptimizer(model), x, y, 0);
            return Math.Sqrt(model.parameters().Zip(before).Sum(t => t.First.detach().sub(t.Second).to(ScalarType.Float64).pow(2).sum().item<double>()));
        }
        double free = UpdateNorm(0);
        Assert.IsTrue(free > 0.05, $"unclipped update {free}");
        Assert.AreEqual(0.05, UpdateNorm(0.05), 1e-5);

        var options = new AdversarialTrainingOptions { AdversarialPerBatch = 0, BatchSize = 32, Epochs = 5, ProgressEvery = 1, LearningRate = 0.045, LearningRateDecay = 0.94, LearningRateDecayEpochs = 2, Optimizer = OptimizerKind.Sgd };
        Assert.AreEqual(0.045, options.LearningRateAt(0), 1e-15);
        Assert.AreEqual(0.045, options.LearningRateAt(1), 1e-15);
        Assert.AreEqual(0.045 * 0.94, options.LearningRateAt(2), 1e-15);
        Assert.AreEqual(0.045 * 0.94, options.LearningRateAt(3), 1e-15);
        Assert.AreEqual(0.045 * 0.94 * 0.94, options.LearningRateAt(4), 1e-15);
        manual_seed(4);
        using var net = nn.Sequential(nn.Flatten(), nn.Linear(784, 10));
        var history = new AdversarialTrainer(options).Train(net, data).History; // one step per epoch
        CollectionAssert.AreEqual(new[] { 0.045, 0.045, 0.045 * 0.94, 0.045 * 0.94, 0.045 * 0.94 * 0.94 },
            history.Select(h => h.LearningRate).ToArray(), Comparer<double>.Create((a, b) => Math.Abs(a - b) < 1e-12 ? 0 : a.CompareTo(b)));
    }
}
