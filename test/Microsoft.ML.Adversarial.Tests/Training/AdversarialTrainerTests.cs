using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Microsoft.ML.Adversarial.Tests.Training;

[TestClass]
public sealed class AdversarialTrainerTests
{
    [TestMethod]
    public void WeightedLossMatchesThePapersFormula()
    {
        using var scope = NewDisposeScope();
        var losses = tensor(new[] { 2f, 4f, 1f, 3f, 5f }); // first k = 2 adversarial
        // (clean 1 + 3 + 5 + 0.3 * (2 + 4)) / ((5 - 2) + 0.3 * 2) = 10.8 / 3.6 = 3
        Assert.AreEqual(3.0, AdversarialTrainer.WeightedLoss(losses, 2, 0.3).item<float>(), 1e-6);
        // lambda = 1 is the plain mean; k = 0 is the clean mean.
        Assert.AreEqual(3.0, AdversarialTrainer.WeightedLoss(losses, 2, 1.0).item<float>(), 1e-6);
        Assert.AreEqual(3.0, AdversarialTrainer.WeightedLoss(losses, 0, 0.3).item<float>(), 1e-6);
        // k = m: only adversarial examples, weights cancel.
        Assert.AreEqual(3.0, AdversarialTrainer.WeightedLoss(losses, 5, 0.3).item<float>(), 1e-6);
    }

    [TestMethod]
    public void KZeroIsExactlyCleanTrainingStepForStep()
    {
        var data = TestData.Train(200);
        var options = new AdversarialTrainingOptions { AdversarialPerBatch = 0, BatchSize = 32, MaxSteps = 6, Optimizer = OptimizerKind.Sgd, LearningRate = 0.05, Seed = 3 };
        var trainer = new AdversarialTrainer(options);
        manual_seed(11);
        var viaTrainer = new SmallCnn(rho: 0.25);
        manual_seed(11);
        var manual = new SmallCnn(rho: 0.25);

        trainer.Train(viaTrainer, data);

        var sgd = optim.SGD(manual.parameters(), 0.05);
        var order = trainer.EpochOrder(data.RowCount, 0);
        manual.train();
        for (int step = 0; step < 6; step++)
        {
            using var scope = NewDisposeScope();
            var (x, y) = data.ToTensors(order.AsSpan(step * 32, 32));
            manual_seed(trainer.StepSeed(step));
            sgd.zero_grad();
            F.cross_entropy(manual.call(x), y).backward();
            sgd.step();
        }
        foreach (var ((name, a), (_, b)) in viaTrainer.named_parameters().Zip(manual.named_parameters()))
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"parameter {name} differs from plain clean training");
    }

    [TestMethod]
    public void AdversarialStepsUseKExamplesAfterTheDelay()
    {
        var data = TestData.Train(256);
        var progress = new List<TrainingProgress>();
        var options = new AdversarialTrainingOptions { BatchSize = 32, AdversarialPerBatch = 16, DelaySteps = 4, MaxSteps = 8, ProgressEvery = 4, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3 };
        new AdversarialTrainer(options).Train(new SmallCnn(rho: 0.25), data, new SyncProgress(progress));
        Assert.AreEqual(2, progress.Count);
        Assert.IsTrue(double.IsNaN(progress[0].AdversarialAccuracy), "the first 4 steps are clean only");
        Assert.IsFalse(double.IsNaN(progress[1].AdversarialAccuracy), "after the delay adversarial examples are used");
        Assert.IsTrue(progress.All(p => double.IsFinite(p.Loss)));
        CollectionAssert.AreEqual(new long[] { 4, 8 }, progress.Select(p => p.Step).ToArray(), "a report every 4 steps");
        Assert.IsTrue(progress.All(p => p.TotalSteps == 8 && p.Epoch == 1), "8 steps of 32 from 256 rows stay in epoch 1");
    }

    [TestMethod]
    public void PaperEpsilonDistributionStaysInZeroToSixteenWithTheRightMean()
    {
        using var scope = NewDisposeScope();
        var e = EpsilonDistribution.Paper.Sample(100_000, new Generator(1), CPU);
        Assert.IsTrue(e.min().item<float>() >= 0 && e.max().item<float>() <= 16);
        // Half-normal with sigma 8 truncated at 2 sigma: mean = sigma * sqrt(2/pi) * (1 - exp(-2)) / erf(sqrt(2)) = 5.783.
        Assert.AreEqual(5.783, e.mean().item<float>(), 0.05);
    }

    [TestMethod]
    public void InterruptedAndResumedRunReachesTheSameWeights()
    {
        var data = TestData.Train(320);
        string dir = TestData.TempFolder();
        AdversarialTrainingOptions Options(int steps) => new()
        {
            BatchSize = 32, AdversarialPerBatch = 16, MaxSteps = steps, Epochs = 2, Method = "step-rnd", Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, Seed = 5,
        };
        manual_seed(2);
        var uninterrupted = new SmallCnn(rho: 0.25, dropout: 0.3);
        new AdversarialTrainer(Options(14)).Train(uninterrupted, data);

        manual_seed(2);
        var first = new SmallCnn(rho: 0.25, dropout: 0.3);
        new AdversarialTrainer(Options(6), new CheckpointOptions { Directory = dir, Every = 4 }).Train(first, data);

        manual_seed(99); // a fresh process would start from other random weights
        var resumed = new SmallCnn(rho: 0.25, dropout: 0.3);
        var result = new AdversarialTrainer(Options(14), new CheckpointOptions { Directory = dir, Every = 4, Resume = true }).Train(resumed, data);
        Assert.AreEqual(6, result.ResumedFromStep);
        foreach (var ((name, a), (_, b)) in uninterrupted.named_parameters().Zip(resumed.named_parameters()))
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"parameter {name} differs after resume");
        Assert.AreEqual(0, Directory.GetDirectories(dir, ".checkpoint.tmp-*").Length, "no temporary checkpoint folder may remain");
    }

    [TestMethod]
    public void CorruptOrMismatchedCheckpointsAreRefusedBeforeLoading()
    {
        var data = TestData.Train(64);
        string dir = TestData.TempFolder();
        var options = new AdversarialTrainingOptions { BatchSize = 32, AdversarialPerBatch = 0, MaxSteps = 2, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3 };
        new AdversarialTrainer(options, new CheckpointOptions { Directory = dir, Every = 1 }).Train(new SmallCnn(rho: 0.25), data);

        var other = new SmallCnn(rho: 0.5);
        var before = other.parameters().First().clone();
        var mismatch = Assert.ThrowsExactly<InvalidDataException>(() =>
            new AdversarialTrainer(options, new CheckpointOptions { Directory = dir, Resume = true }).Train(other, data));
        StringAssert.Contains(mismatch.Message, "another architecture");
        Assert.IsTrue(other.parameters().First().equal(before).all().item<bool>(), "nothing may be loaded from a mismatched checkpoint");

        string model = Path.Combine(dir, "checkpoint", "model.dat");
        var bytes = File.ReadAllBytes(model);
        bytes[bytes.Length / 2] ^= 0xFF;
        File.WriteAllBytes(model, bytes);
        var corrupt = Assert.ThrowsExactly<InvalidDataException>(() =>
            new AdversarialTrainer(options, new CheckpointOptions { Directory = dir, Resume = true }).Train(new SmallCnn(rho: 0.25), data));
        StringAssert.Contains(corrupt.Message, "corrupt");
    }

    [TestMethod]
    public void ResumingWithAnotherPrecisionIsRefusedNamingBothValues()
    {
        var data = TestData.Train(64);
        string dir = TestData.TempFolder();
        var options = new AdversarialTrainingOptions { BatchSize = 32, AdversarialPerBatch = 0, MaxSteps = 2, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3 };
        new AdversarialTrainer(options, new CheckpointOptions { Directory = dir, Every = 1 }).Train(new SmallCnn(rho: 0.25), data);

        // An fp32 checkpoint resumed in bfloat16 (advml train --resume --precision bf16) would mix two runs.
        var model = new SmallCnn(rho: 0.25);
        var before = model.parameters().First().clone();
        var bf16 = new AdversarialTrainingOptions
        {
            BatchSize = 32, AdversarialPerBatch = 0, MaxSteps = 4, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, Compute = ComputeOptions.BFloat16,
        };
        var refused = Assert.ThrowsExactly<InvalidDataException>(() =>
            new AdversarialTrainer(bf16, new CheckpointOptions { Directory = dir, Resume = true }).Train(model, data));
        StringAssert.Contains(refused.Message, "Precision: fp32 vs bf16");
        StringAssert.Contains(refused.Message, "resume with the checkpoint's settings");
        Assert.IsTrue(model.parameters().First().equal(before).all().item<bool>(), "nothing may be loaded from a checkpoint of another precision");

        // The layout options only reorder float additions: resuming with them changed is allowed.
        var plainLayout = new AdversarialTrainingOptions
        {
            BatchSize = 32, AdversarialPerBatch = 0, MaxSteps = 3, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, Compute = ComputeOptions.Plain,
        };
        var resumed = new AdversarialTrainer(plainLayout, new CheckpointOptions { Directory = dir, Resume = true }).Train(new SmallCnn(rho: 0.25), data);
        Assert.AreEqual(2, resumed.ResumedFromStep);
    }

    [TestMethod]
    public void CheckpointsWrittenBeforeThePrecisionWasRecordedResumeAsFloat32()
    {
        var data = TestData.Train(64);
        string dir = TestData.TempFolder();
        AdversarialTrainingOptions Options(int steps, ComputeOptions compute) => new()
        {
            BatchSize = 32, AdversarialPerBatch = 0, MaxSteps = steps, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, Compute = compute,
        };
        new AdversarialTrainer(Options(2, ComputeOptions.Default), new CheckpointOptions { Directory = dir, Every = 1 }).Train(new SmallCnn(rho: 0.25), data);
        // Take the precision out of the checkpoint's settings, as in a checkpoint written before it was recorded.
        string state = Path.Combine(dir, "checkpoint", "state.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(state))!;
        json["Settings"]!.AsObject().Remove("Precision");
        File.WriteAllText(state, json.ToJsonString());

        var refused = Assert.ThrowsExactly<InvalidDataException>(() =>
            new AdversarialTrainer(Options(4, ComputeOptions.BFloat16), new CheckpointOptions { Directory = dir, Resume = true }).Train(new SmallCnn(rho: 0.25), data));
        StringAssert.Contains(refused.Message, "Precision: fp32 vs bf16");
        var resumed = new AdversarialTrainer(Options(3, ComputeOptions.Default), new CheckpointOptions { Directory = dir, Resume = true }).Train(new SmallCnn(rho: 0.25), data);
        Assert.AreEqual(2, resumed.ResumedFromStep);
    }

    [TestMethod]
    public void CancellationStopsBetweenSteps()
    {
        var data = TestData.Train(128);
        using var cts = new CancellationTokenSource();
        var progress = new SyncProgress(new List<TrainingProgress>(), _ => cts.Cancel());
        var options = new AdversarialTrainingOptions { BatchSize = 16, AdversarialPerBatch = 0, ProgressEvery = 2, Epochs = 3, Optimizer = OptimizerKind.Adam, LearningRate = 1e-3 };
        Assert.ThrowsExactly<OperationCanceledException>(() => new AdversarialTrainer(options).Train(new SmallCnn(rho: 0.25), data, progress, cts.Token));
        Assert.AreEqual(1, progress.Seen.Count, "training stops at the first step after cancellation");
    }

    [TestMethod]
    [DataRow(17, 16, 0.3, "k (adversarial examples per minibatch)")]
    [DataRow(4, 16, -1.0, "lambda")]
    public void BadOptionsAreRejectedWithTheOptionsName(int k, int m, double lambda, string expected)
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() =>
            new AdversarialTrainer(new AdversarialTrainingOptions { AdversarialPerBatch = k, BatchSize = m, AdversarialLossWeight = lambda }));
        StringAssert.Contains(ex.Message, expected);
        var method = Assert.ThrowsExactly<ArgumentException>(() => new AdversarialTrainer(new AdversarialTrainingOptions { Method = "stepll" }));
        StringAssert.Contains(method.Message, "'stepll'");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new AdversarialTrainer(new AdversarialTrainingOptions { Epsilon = new UniformEpsilon(8, 2) }));
    }

    /// <summary>Reports synchronously (Progress&lt;T&gt; would post to the thread pool).</summary>
    private sealed class SyncProgress(List<TrainingProgress> seen, Action<TrainingProgress>? then = null) : IProgress<TrainingProgress>
    {
        public List<TrainingProgress> Seen => seen;
        public void Report(TrainingProgress value)
        {
            seen.Add(value);
            then?.Invoke(value);
        }
    }
}
