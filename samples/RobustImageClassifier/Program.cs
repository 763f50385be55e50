// A robust image classifier in the shape ML.NET Model Builder generates (RobustImageClassifier.Training.cs,
// RobustImageClassifier.Consumption.cs), trained from an image folder, then audited: clean metrics, metrics under
// attack, and transfer of the attacks to an ONNX model that can only be scored.
//
//   dotnet run -c Release --project samples/RobustImageClassifier -- [IMAGE_FOLDER] [EPOCHS]
//
// IMAGE_FOLDER has one sub-folder per class. Without one (or when the default fashion-image-folder is missing), the
// sample writes 2,000 Fashion-MNIST training images as PNGs there first.
using System.Diagnostics;
using Microsoft.ML;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Data;
using RobustImageClassifierSample;

var watch = Stopwatch.StartNew();
const string DefaultFolder = "fashion-image-folder";
string imageFolder = args.Length > 0 ? args[0] : DefaultFolder;
int epochs = args.Length > 1 ? int.Parse(args[1]) : RobustImageClassifier.DefaultEpochs;
if (imageFolder == DefaultFolder && !Directory.Exists(imageFolder))
{
    var sample = new MLContext(seed: 1).Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 2000, subset: SubsetMode.Stratified);
    Console.WriteLine($"Wrote {new MLContext().Data.SaveAsImageFolder(sample, imageFolder)} Fashion-MNIST PNG files to {imageFolder}/<class>/.");
}

// 1. Train as Model Builder's generated code does: load the folder, split, fit the pipeline, save the model.
var mlContext = new MLContext(seed: 1);
IDataView data = RobustImageClassifier.LoadImageFromFolder(mlContext, imageFolder);
var split = mlContext.Data.TrainTestSplit(data, testFraction: 0.2, seed: 1);
Console.WriteLine($"Training on {split.TrainSet.GetRowCount() ?? Count(split.TrainSet)} images ({epochs} epoch{(epochs == 1 ? "" : "s")} of adversarial training)...");
ITransformer model = RobustImageClassifier.RetrainModel(mlContext, split.TrainSet, epochs);
string modelPath = Path.GetFullPath("RobustImageClassifier.mlnet");
RobustImageClassifier.SaveModel(mlContext, model, split.TrainSet, modelPath);

// 2. Consume it as Model Builder's generated code does: a lazy prediction engine over the saved file.
RobustImageClassifier.MLNetModelPath = modelPath;
var firstTest = mlContext.Data.CreateEnumerable<RobustImageClassifier.ModelInput>(split.TestSet, reuseRowObject: false).First();
var prediction = RobustImageClassifier.Predict(new RobustImageClassifier.ModelInput { ImagePath = firstTest.ImagePath });
Console.WriteLine($"Saved {Path.GetFileName(modelPath)}; {Path.GetFileName(firstTest.ImagePath)} (label {firstTest.Label}) is predicted " +
    $"\"{prediction.PredictedLabel}\" with probability {prediction.Score.Max():P1}.");

// 3. Audit. The network inside the pipeline, and the test images as it reads them (the pipeline up to the trainer).
var chain = ((IEnumerable<ITransformer>)model).ToList();
var classifier = chain.OfType<ImageClassifierTransformer>().Single();
var preprocessing = new TransformerChain<ITransformer>(chain.TakeWhile(t => t != classifier).ToArray());
IDataView Pixels(IDataView files) =>
    mlContext.Data.Cache(mlContext.Transforms.SelectColumns("Label", "Pixels").Fit(preprocessing.Transform(files)).Transform(preprocessing.Transform(files)));
IDataView testPixels = Pixels(split.TestSet), trainPixels = Pixels(split.TrainSet);

// 3a. Clean metrics, as ML.NET reports them.
var clean = mlContext.MulticlassClassification.Evaluate(model.Transform(split.TestSet), predictedLabelColumnName: "PredictedLabel", topKPredictionCount: 3);
Console.WriteLine();
Console.WriteLine($"Clean test metrics: accuracy {clean.MicroAccuracy:P1}, macro accuracy {clean.MacroAccuracy:P1}, top-3 {clean.TopKAccuracy:P1}, log-loss {clean.LogLoss:F3}");

// 3b. Under attack: ML.NET metrics for one attack, then the robustness table (95% intervals, label-leak checks).
var fgsm = mlContext.Adversarial().Evaluate(classifier, testPixels, "fgsm", epsilon: 8, topKPredictionCount: 3);
Console.WriteLine($"Under FGSM eps 8:   accuracy {fgsm.MicroAccuracy:P1}, macro accuracy {fgsm.MacroAccuracy:P1}, top-3 {fgsm.TopKAccuracy:P1}, log-loss {fgsm.LogLoss:F3}");
Console.WriteLine();
Console.WriteLine(mlContext.Adversarial().EvaluateRobustness(classifier, testPixels,
    new RobustnessOptions { Methods = new[] { "fgsm", "step-ll", "iter-basic" }, Epsilons = new[] { 8.0, 16.0 } }, modelName: "robust image classifier"));

// 3c. Transfer to a model we can only score: SDCA on the pixels, exported to ONNX, read back with ApplyOnnxModel.
string onnxPath = Path.GetFullPath("sdca-target.onnx");
var (_, slotClasses) = OnnxTarget.TrainAndExport(mlContext, trainPixels, onnxPath);
ITransformer onnx = OnnxTarget.Load(mlContext, onnxPath, testPixels);
var transfer = mlContext.Adversarial().EvaluateTransfer(
    new Dictionary<string, ImageClassifierTransformer> { ["robust"] = classifier },
    new Dictionary<string, ITransformer> { ["robust"] = classifier, ["onnx-sdca"] = onnx },
    testPixels, new TransferOptions { Methods = new[] { "fgsm", "iter-basic" }, Epsilons = new[] { 8.0, 16.0 } },
    // The ONNX output has no slot names: say which class each score slot is (the training label's key values).
    blackBox: new BlackBoxClassifier.Options { ScoreColumnName = OnnxTarget.ScoreColumnName, ScoreClassNames = slotClasses });
Console.WriteLine($"Transfer from the robust classifier to {Path.GetFileName(onnxPath)} (ApplyOnnxModel; clean accuracy of the ONNX model " +
    $"{Accuracy(onnx.Transform(testPixels), slotClasses):P1}):");
Console.WriteLine(transfer);
Console.WriteLine($"Done in {watch.Elapsed.TotalSeconds:F0} s.");

static long Count(IDataView view)
{
    long n = 0;
    using var cursor = view.GetRowCursor(Array.Empty<DataViewSchema.Column>());
    while (cursor.MoveNext()) n++;
    return n;
}

// Accuracy of the ONNX scores: the slot with the highest score, named by the slot classes, against the label's name.
static double Accuracy(IDataView scored, IReadOnlyList<string> slotClasses)
{
    VBuffer<ReadOnlyMemory<char>> keys = default;
    scored.Schema["Label"].GetKeyValues(ref keys);
    var names = keys.DenseValues().Select(k => k.ToString()).ToList();
    int right = 0, total = 0;
    using var cursor = scored.GetRowCursor(new[] { scored.Schema["Label"], scored.Schema[OnnxTarget.ScoreColumnName] });
    var label = cursor.GetGetter<uint>(scored.Schema["Label"]);
    var score = cursor.GetGetter<VBuffer<float>>(scored.Schema[OnnxTarget.ScoreColumnName]);
    uint key = 0;
    VBuffer<float> s = default;
    while (cursor.MoveNext())
    {
        label(ref key);
        score(ref s);
        var values = s.DenseValues().ToArray();
        right += slotClasses[Array.IndexOf(values, values.Max())] == names[(int)key - 1] ? 1 : 0;
        total++;
    }
    return (double)right / total;
}
