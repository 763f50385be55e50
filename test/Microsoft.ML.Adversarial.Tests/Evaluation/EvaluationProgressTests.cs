using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Evaluation;

/// <summary>Issue 14: long evaluations report progress (IProgress and mlContext.Log).</summary>
[TestClass]
public sealed class EvaluationProgressTests
{
    /// <summary>Reports arrive synchronously, in order (Progress&lt;T&gt; would post them to the thread pool).</summary>
    private sealed class Collect : IProgress<EvaluationProgress>
    {
        public List<EvaluationProgress> Reports { get; } = new();
        public void Report(EvaluationProgress value) => Reports.Add(value);
    }

    private static void AssertMonotoneToTotal(IReadOnlyList<EvaluationProgress> reports, long total, long batches, long steps)
    {
        Assert.IsTrue(reports.Count > 0, "no progress reports");
        for (int i = 1; i < reports.Count; i++)
        {
            Assert.IsTrue(reports[i].Done >= reports[i - 1].Done, $"report {i}: images went back");
            Assert.IsTrue(reports[i].BatchesDone >= reports[i - 1].BatchesDone, $"report {i}: batches went back");
            Assert.IsTrue(reports[i].StepsDone >= reports[i - 1].StepsDone, $"report {i}: steps went back");
            Assert.IsTrue(reports[i].Fraction >= reports[i - 1].Fraction, $"report {i}: fraction went back");
        }
        Assert.IsTrue(reports.All(r => r.Total == total && r.Batches == batches && r.Steps == steps && r.Done <= total));
        var last = reports[^1];
        Assert.AreEqual(total, last.Done);
        Assert.AreEqual(batches, last.BatchesDone);
        Assert.AreEqual(steps, last.StepsDone);
        Assert.AreEqual(1.0, last.Fraction);
    }

    private static SmallCnn Model()
    {
        manual_seed(3);
        var model = new SmallCnn(rho: 0.25);
        model.eval();
        return model;
    }

    [TestMethod]
    public void RobustnessAndTransferReportEachMethodOfEachBatchEndingAtTheTotal()
    {
        var data = TestData.Test(50);
        using var model = Model();
        var robust = new Collect();
        new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm", "step-ll" }, Epsilons = new[] { 4.0, 8.0 }, BatchSize = 16, Progress = robust })
            .Evaluate(model, data, "m");
        // 50 images in batches of 16: 4 batches, 2 methods each.
        AssertMonotoneToTotal(robust.Reports, 50, 4, 8);
        Assert.AreEqual(8, robust.Reports.Count(r => r.Method is not null));
        CollectionAssert.AreEqual(new[] { "fgsm", "step-ll" }, robust.Reports.Where(r => r.Method is not null).Take(2).Select(r => r.Method).ToArray());
        CollectionAssert.AreEqual(new[] { 4.0, 8.0 }, robust.Reports.First(r => r.Method is not null).Epsilons!.ToArray());
        StringAssert.Contains(robust.Reports[0].ToString(), "fgsm at eps 4/8");

        var transfer = new Collect();
        var models = new Dictionary<string, nn.Module<Tensor, Tensor>> { ["a"] = model };
        new TransferEvaluator(new TransferOptions { Methods = new[] { "fgsm" }, BatchSize = 32, Progress = transfer }).Evaluate(models, models, data);
        AssertMonotoneToTotal(transfer.Reports, 50, 2, 2);
    }

    [TestMethod]
    public void MLNetEvaluationsLogProgressToMLContextAndTheCallersProgress()
    {
        var ml = new MLContext(seed: 1);
        var messages = new List<string>();
        ml.Log += (_, e) => { lock (messages) messages.Add(e.RawMessage); };
        var train = TestData.Train(64).View();
        var classifier = ml.MulticlassClassification.Trainers.AdversarialTraining(new Microsoft.ML.Adversarial.MLNet.AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(ModelArchitecture.SmallCnn, Rho: 0.25), AdversarialPerBatch = 0, MaxSteps = 1,
        }).Fit(train);
        var test = TestData.Test(40).View();

        var caller = new Collect();
        var options = new RobustnessOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 8.0 }, BatchSize = 16, Progress = caller };
        ml.Adversarial().EvaluateRobustness(classifier, test, options);
        AssertMonotoneToTotal(caller.Reports, 40, 3, 3);
        Assert.AreSame(caller, options.Progress, "the caller's options are left as they were");
        lock (messages)
        {
            Assert.IsTrue(messages.Any(m => m.Contains("Evaluating") && m.Contains("40 images")), string.Join("\n", messages));
            Assert.IsTrue(messages.Any(m => m.Contains("batch 3/3") && m.Contains("40/40 images")), string.Join("\n", messages));
        }

        var perBatch = new Collect();
        var metrics = ml.Adversarial().Evaluate(classifier, test, "fgsm", 8, progress: perBatch);
        Assert.IsTrue(metrics.MicroAccuracy is >= 0 and <= 1);
        Assert.IsTrue(perBatch.Reports.Count > 0, "Evaluate reported no progress");
        Assert.AreEqual(40, perBatch.Reports[^1].Done);
        Assert.AreEqual(40, perBatch.Reports[^1].Total);
        for (int i = 1; i < perBatch.Reports.Count; i++) Assert.IsTrue(perBatch.Reports[i].Done > perBatch.Reports[i - 1].Done);
        lock (messages)
            Assert.IsTrue(messages.Any(m => m.Contains("under fgsm at eps 8") && m.Contains("top-1 accuracy")), string.Join("\n", messages));
    }
}
