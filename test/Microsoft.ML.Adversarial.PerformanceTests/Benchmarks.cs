using BenchmarkDotNet.Attributes;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>Attacks and one training step on SmallCnn (batch 256) and Inception v3 (batch 8, 299 x 299), CPU.</summary>
[MemoryDiagnoser]
public class AttackBenchmarks
{
    private Workload _w = null!;

    [Params("smallcnn", "inception")]
    public string Network { get; set; } = "smallcnn";

    [Params("fgsm", "step-ll", "iter-basic", "train-step")]
    public string Workload { get; set; } = "fgsm";

    [GlobalSetup]
    public void Setup()
    {
        torch.set_num_threads(Environment.ProcessorCount);
        _w = new Workload(Workload, Network, Harness.PlanFor(Network, Workload).Batch);
    }

    [Benchmark]
    public void Run() => _w.Run();

    [GlobalCleanup]
    public void Cleanup() => _w.Dispose();
}

/// <summary>FGSM over 2,048 Fashion-MNIST images: ML.NET transformer (IDataView in and out) against the raw tensor API.</summary>
[MemoryDiagnoser]
public class MLNetPathBenchmarks
{
    private MLContext _ml = null!;
    private ImageSet _data = null!;
    private ImageClassifierTransformer _classifier = null!;
    private AdversarialAttackTransformer _fgsm = null!;

    [GlobalSetup]
    public void Setup()
    {
        _ml = new MLContext(seed: 1);
        _data = FashionMnist.Load(new FashionMnistOptions { Split = FashionMnistSplit.Test, Count = 2048 });
        _classifier = MLNetPath.UntrainedClassifier(_ml, _data);
        _fgsm = _ml.Transforms.Fgsm(_classifier, 16).Fit(_ml.Data.LoadFromImageSet(_data));
    }

    [Benchmark(Baseline = true)]
    public float TensorApi() => MLNetPath.RunTensors(_classifier.Model, _data, 256);

    [Benchmark]
    public float MLNetTransformer() => MLNetPath.RunTransformer(_fgsm, _data);
}

internal static class MLNetPath
{
    /// <summary>A SmallCnn wrapped as the ML.NET scorer (one training step: speed does not depend on accuracy).</summary>
    public static ImageClassifierTransformer UntrainedClassifier(MLContext ml, ImageSet data) =>
        ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(), AdversarialPerBatch = 0, MaxSteps = 1, Optimizer = Training.OptimizerKind.Adam, LearningRate = 1e-3,
        }).Fit(ml.Data.LoadFromImageSet(data));

    public static float RunTensors(nn.Module<Tensor, Tensor> model, ImageSet data, int batch)
    {
        var attack = Attacks.Fgsm(16);
        float checksum = 0;
        for (int start = 0; start < data.RowCount; start += batch)
        {
            using var scope = NewDisposeScope();
            var (x, y) = data.ToTensors(start, Math.Min(batch, data.RowCount - start));
            var adv = attack.Generate(model, x, y).cpu();
            checksum += adv[0, 0, 0, 0].item<float>();
            // Copy out as the ML.NET path does, so both produce host arrays.
            _ = adv.data<float>().ToArray();
        }
        return checksum;
    }

    public static float RunTransformer(AdversarialAttackTransformer fgsm, ImageSet data)
    {
        var output = fgsm.Transform(new ImageSetDataView(data));
        var column = output.Schema[fgsm.OutputColumnName];
        using var cursor = output.GetRowCursor(new[] { column });
        var getter = cursor.GetGetter<VBuffer<float>>(column);
        var buffer = default(VBuffer<float>);
        float checksum = 0;
        while (cursor.MoveNext())
        {
            getter(ref buffer);
            checksum += buffer.GetValues()[0];
        }
        return checksum;
    }
}
