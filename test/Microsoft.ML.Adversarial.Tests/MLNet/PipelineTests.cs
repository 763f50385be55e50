using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Data;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Tests.MLNet;

[TestClass]
public sealed class PipelineTests
{
    private static readonly Lazy<(MLContext Ml, ImageClassifierTransformer Model, IDataView Test)> Trained = new(() =>
    {
        var ml = new MLContext(seed: 1);
        var train = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 1500, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var test = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 300, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var model = ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(Rho: 0.5), Epochs = 2, Optimizer = OptimizerKind.Adam, LearningRate = 2e-3, Seed = 3,
        }).Fit(train);
        return (ml, model, test);
    });

    [TestMethod]
    public void TrainScoreAttackAndEvaluateWithTopFive()
    {
        var (ml, model, test) = Trained.Value;
        var scored = model.Transform(test);
        var score = scored.Schema["Score"];
        Assert.AreEqual(10, ((VectorDataViewType)score.Type).Size);
        var slotNames = default(VBuffer<ReadOnlyMemory<char>>);
        score.Annotations.GetValue("SlotNames", ref slotNames);
        Assert.AreEqual("T-shirt/top", slotNames.GetValues()[0].ToString());
        CollectionAssert.AreEqual(FashionMnist.ClassNames.ToArray(), TestData.KeyNames(scored, "PredictedLabel"));

        var clean = ml.MulticlassClassification.Evaluate(scored, topKPredictionCount: 5);
        Assert.IsTrue(clean.MicroAccuracy > 0.6, $"clean accuracy {clean.MicroAccuracy}");
        // ML.NET's top-1/top-5 from our Score column equal the network's own top-k on the same images: slots, keys and
        // labels line up.
        var (images, labels) = ((ImageSetDataView)test).Images.ToTensors(0, 300);
        using (torch.no_grad())
        {
            var top = model.Model.call(images).topk(5, 1).indexes;
            Assert.AreEqual(top[.., 0].eq(labels).to(torch.ScalarType.Float64).mean().item<double>(), clean.MicroAccuracy, 1e-9);
            Assert.AreEqual(top.eq(labels.unsqueeze(1)).any(1).to(torch.ScalarType.Float64).mean().item<double>(), clean.TopKAccuracy, 1e-9);
        }
        var probabilities = TestData.ReadVectors(scored, "Score");
        Assert.IsTrue(probabilities.All(p => Math.Abs(p.Sum() - 1) < 1e-4), "scores are probabilities");

        var fgsm = ml.Transforms.Fgsm(model, epsilon: 16).Fit(test);
        var attacked = fgsm.Transform(test);
        // The transform is FGSM: its pixels equal the tensor API's FGSM with the true labels.
        var expectedFgsm = Attacks.Fgsm(16).Generate(model.Model, images, labels).flatten(1);
        var fgsmRows = TestData.ReadVectors(attacked, "Pixels");
        for (int i = 0; i < 300; i += 37) CollectionAssert.AreEqual(expectedFgsm[i].data<float>().ToArray(), fgsmRows[i], $"FGSM row {i}");
        var attackedMetrics = ml.MulticlassClassification.Evaluate(model.Transform(attacked), topKPredictionCount: 5);
        Assert.IsTrue(attackedMetrics.MicroAccuracy < clean.MicroAccuracy - 0.05, $"FGSM eps 16: {attackedMetrics.MicroAccuracy} vs clean {clean.MicroAccuracy}");

        // The pipeline's adversarial pixels equal the tensor API's, within the epsilon ball.
        var original = TestData.ReadVectors(test, "Pixels");
        var adversarial = TestData.ReadVectors(attacked, "Pixels");
        Assert.AreEqual(original.Count, adversarial.Count);
        Assert.IsTrue(original.Zip(adversarial).All(p => p.First.Zip(p.Second, (a, b) => Math.Abs(a - b)).Max() <= 16f / 255f + 1e-5f));
        var stepLL = TestData.ReadVectors(ml.Transforms.StepLL(model, 8).Fit(test).Transform(test), "Pixels");
        var expectedStepLL = Attacks.StepLL(8).Generate(model.Model, images).flatten(1);
        for (int i = 0; i < 300; i += 37) CollectionAssert.AreEqual(expectedStepLL[i].data<float>().ToArray(), stepLL[i], $"step l.l. row {i}");
        var reread = TestData.ReadVectors(attacked, "Pixels");
        Assert.IsTrue(adversarial.Zip(reread).All(p => p.First.SequenceEqual(p.Second)), "reading the attacked view twice gives the same pixels");
    }

    [TestMethod]
    public void BatchedAttackEqualsTheTensorApi()
    {
        var (ml, model, test) = Trained.Value;
        var attacked = ml.Transforms.AdversarialAttack(model, new AdversarialAttackEstimator.Options { Method = "iter-ll", Epsilon = 4, BatchSize = 64 }).Fit(test).Transform(test);
        var pipeline = TestData.ReadVectors(attacked, "Pixels");
        var (x, _) = ((ImageSetDataView)test).Images.ToTensors(0, 64);
        var direct = Attacks.IterLL(4).Generate(model.Model, x).flatten(1);
        for (int i = 0; i < 64; i++)
        {
            var row = direct[i].data<float>().ToArray();
            int differing = row.Zip(pipeline[i], (a, b) => Math.Abs(a - b) > 1e-6 ? 1 : 0).Sum();
            Assert.IsTrue(differing <= row.Length / 100, $"row {i}: {differing} pixels differ");
        }
    }

    [TestMethod]
    public void SchemaErrorsNameTheColumnWhatWasFoundAndWhatIsExpected()
    {
        var (ml, model, _) = Trained.Value;
        var trainer = ml.MulticlassClassification.Trainers.AdversarialTraining();
        var wrong = ml.Data.LoadFromEnumerable(new[] { new Row { Features = new float[784], Label = 1f } });

        var missing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(wrong));
        StringAssert.Contains(missing.Message, "'Pixels' not found");
        StringAssert.Contains(missing.Message, "Features");

        var textLabel = ml.Data.LoadFromEnumerable(new[] { new TextLabelRow { Pixels = new float[784], Label = "cat" } });
        var label = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.Fit(textLabel));
        StringAssert.Contains(label.Message, "Label column 'Label'");
        StringAssert.Contains(label.Message, "key");

        var small = ml.Data.LoadFromEnumerable(new[] { new SmallRow { Pixels = new float[3 * 8 * 8] } });
        var shapeError = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => model.Transform(small));
        StringAssert.Contains(shapeError.Message, "1x28x28");

        var unknown = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.AdversarialAttack(model, "fgsn"));
        StringAssert.Contains(unknown.Message, "step-ll");

        // ML.NET builds SchemaShape from a schema internally (pipelines call GetOutputSchema with it).
        var shape = (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.Public)!
            .Invoke(null, new object[] { wrong.Schema })!;
        var shapeMissing = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(shape));
        StringAssert.Contains(shapeMissing.Message, "'Pixels' not found");
        var outShape = ml.MulticlassClassification.Trainers.AdversarialTraining(featureColumnName: "Features").GetOutputSchema(shape);
        Assert.IsTrue(outShape.Any(c => c.Name == "Score") && outShape.Any(c => c.Name == "PredictedLabel" && c.IsKey));
    }

    [TestMethod]
    public void RequestingAMissingCudaDeviceIsAClearErrorUnlessFallbackIsAllowed()
    {
        if (TorchSharp.torch.cuda.is_available()) Assert.Inconclusive("CUDA is present on this machine.");
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => DeviceParser.Parse("cuda:0"));
        StringAssert.Contains(ex.Message, "CUDA is not available");
        StringAssert.Contains(ex.Message, "FallbackToCpu");
        Assert.AreEqual(TorchSharp.DeviceType.CPU, DeviceParser.Parse("cuda", fallbackToCpu: true).type);
        Assert.ThrowsExactly<ArgumentException>(() => DeviceParser.Parse("gpu0"));
    }

    private sealed class Row
    {
        [VectorType(784)] public float[] Features { get; set; } = Array.Empty<float>();
        public float Label { get; set; }
    }

    private sealed class TextLabelRow
    {
        [VectorType(784)] public float[] Pixels { get; set; } = Array.Empty<float>();
        public string Label { get; set; } = "";
    }

    private sealed class SmallRow
    {
        [VectorType(3, 8, 8)] public float[] Pixels { get; set; } = Array.Empty<float>();
    }
}
