// Trains a clean and an adversarially trained SmallCnn on Fashion-MNIST through ML.NET pipelines, then measures
// both on clean and attacked test images with ML.NET's own multiclass metrics (top-1 and top-5).
//
//   dotnet run -c Release --project samples/FashionMnistRobustness -- [--train 20000] [--test 2000] [--epochs 2]
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;

int trainCount = Arg("--train", 20_000), testCount = Arg("--test", 2_000), epochs = Arg("--epochs", 2);
var mlContext = new MLContext(seed: 1);

// 1. Real data as IDataView: key-typed Label (class names as key values) and Pixels (Vector<Single, 1, 28, 28>).
IDataView train = mlContext.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: trainCount, subset: SubsetMode.Stratified);
IDataView test = mlContext.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: testCount, subset: SubsetMode.Stratified);
Console.WriteLine($"Fashion-MNIST: {train.GetRowCount()} training and {test.GetRowCount()} test images.");

// 2. Two trainers with the same budget: clean (k = 0) and the paper's adversarial training (step l.l., k = 16 of 32).
AdversarialTrainingEstimator.Options Options(int k) => new()
{
    Model = new ModelSpec(ModelArchitecture.SmallCnn),
    AdversarialPerBatch = k,
    Epochs = epochs,                        // Adam, learning rate 1e-3: the library's default optimiser
    ProgressEvery = 200,
    Progress = new Progress<TrainingProgress>(p => Console.WriteLine($"  {p}")),
};

var models = new Dictionary<string, ImageClassifierTransformer>();
foreach (var (name, k) in new[] { ("baseline (clean)", 0), ("adversarial (step l.l.)", 16) })
{
    Console.WriteLine($"Training {name}...");
    var watch = Stopwatch.StartNew();
    models[name] = mlContext.MulticlassClassification.Trainers.AdversarialTraining(Options(k)).Fit(train);
    Console.WriteLine($"  done in {watch.Elapsed.TotalSeconds:F0} s");
}

// 3. Evaluate on clean and attacked test data with ML.NET's metrics.
Console.WriteLine();
Console.WriteLine($"{"model",-26}{"attack",-14}{"eps",5}{"top-1",9}{"top-5",9}");
foreach (var (name, model) in models)
{
    Report(name, "clean", 0, model.Transform(test));
    foreach (var method in new[] { AttackMethod.StepLL, AttackMethod.Fgsm, AttackMethod.IterLL })
        foreach (double eps in new[] { 2.0, 4.0, 8.0, 16.0 })
        {
            var attack = mlContext.Transforms.AdversarialAttack(model, method, eps).Fit(test);
            Report(name, method, eps, model.Transform(attack.Transform(test)));
        }
}

void Report(string model, string attack, double eps, IDataView scored)
{
    var m = mlContext.MulticlassClassification.Evaluate(scored, topKPredictionCount: 5);
    Console.WriteLine($"{model,-26}{attack,-14}{(eps == 0 ? "-" : eps.ToString()),5}{m.MicroAccuracy,9:P1}{m.TopKAccuracy,9:P1}");
}

int Arg(string name, int fallback)
{
    int i = Array.IndexOf(args, name);
    if (i < 0) return fallback;
    if (i + 1 < args.Length && int.TryParse(args[i + 1], out int v) && v > 0) return v;
    Console.Error.WriteLine($"{name} needs a positive whole number.");
    Environment.Exit(2);
    return fallback;
}
