// Train a robust Fashion-MNIST classifier, evaluate it clean and under attack with ML.NET metrics, save it, load it
// and predict one image: the whole life of a model, top to bottom.
//
//   dotnet run -c Release --project samples/RobustClassifier
using Microsoft.ML;
using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Data;

var mlContext = new MLContext(seed: 1);

// 1. Load data: Label is a key (with the class names), Pixels is Vector<Single, 1, 28, 28> in [0, 1].
IDataView trainData = mlContext.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 10_000, subset: SubsetMode.Stratified);
IDataView testData = mlContext.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 1_000, subset: SubsetMode.Stratified);

// 2. Build the pipeline: adversarial training (the paper's Algorithm 1, step l.l.), then the predicted key as text.
var pipeline = mlContext.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
    {
        Model = new ModelSpec(ModelArchitecture.SmallCnn),
        AdversarialPerBatch = 16,          // k of m = 32 examples are adversarial
        Method = AttackMethod.StepLL,
        Epochs = 2,                        // Adam, learning rate 1e-3: the library's default optimiser
        Progress = new Progress<TrainingProgress>(p => Console.WriteLine($"  {p}")),
        ProgressEvery = 200,
    })
    .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel"));

// 3. Train.
Console.WriteLine("Training...");
var model = pipeline.Fit(trainData);

// 4. Evaluate with ML.NET's metrics, on clean images and under attack. The evaluators and attack transforms take the
//    fitted chain itself: they find its classifier and attack the pixels that reach it.
var clean = mlContext.MulticlassClassification.Evaluate(model.Transform(testData), topKPredictionCount: 5);
Console.WriteLine($"Clean:           top-1 {clean.MicroAccuracy:P1}, top-5 {clean.TopKAccuracy:P1}");
foreach (var (method, eps) in new[] { (AttackMethod.StepLL, 16.0), (AttackMethod.Fgsm, 8.0), (AttackMethod.IterLL, 8.0) })
{
    var metrics = mlContext.Adversarial().Evaluate(model, testData, method, eps);
    Console.WriteLine($"{method,-8} eps {eps,2}: top-1 {metrics.MicroAccuracy:P1}, top-5 {metrics.TopKAccuracy:P1}");
}
// The full robustness table: every method and epsilon, 95% intervals, label-leak checks.
Console.WriteLine(mlContext.Adversarial().EvaluateRobustness(model, testData));

// 5. Save, load (as another process would), predict one image.
mlContext.Model.Save(model, trainData.Schema, "robust-fashion-mnist.zip");
var loaded = mlContext.Model.Load("robust-fashion-mnist.zip", out _);
var engine = mlContext.Model.CreatePredictionEngine<FashionImage, FashionPrediction>(loaded);

var firstImage = mlContext.Data.CreateEnumerable<FashionImage>(testData, reuseRowObject: false).First();
var prediction = engine.Predict(firstImage);
Console.WriteLine($"Saved robust-fashion-mnist.zip; the loaded model predicts \"{prediction.PredictedClass}\" for the first test image " +
    $"(probability {prediction.Score.Max():P1}).");

/// <summary>Input row: the pixel vector the model was trained on.</summary>
public sealed class FashionImage
{
    [VectorType(1, 28, 28)] public float[] Pixels { get; set; } = Array.Empty<float>();
}

/// <summary>Output row: class probabilities and the predicted class name.</summary>
public sealed class FashionPrediction
{
    public float[] Score { get; set; } = Array.Empty<float>();
    public string PredictedClass { get; set; } = "";
}
