// Image folders in, adversarial PNGs out, with ML.NET's ImageAnalytics in front of the adversarial components.
//
//   dotnet run -c Release --project samples/ImageFolderAttack -- [IMAGE_FOLDER] [OUTPUT_FOLDER]
//
// IMAGE_FOLDER has one sub-folder per class. Without one, the sample writes 600 Fashion-MNIST images as PNGs first.
using Microsoft.ML;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;

var mlContext = new MLContext(seed: 1);
string imageFolder = args.Length > 0 ? args[0] : "fashion-images";
string outputFolder = args.Length > 1 ? args[1] : "adversarial-images";
if (args.Length == 0 && !Directory.Exists(imageFolder))
{
    var sample = mlContext.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 600, subset: SubsetMode.Stratified);
    Console.WriteLine($"Wrote {mlContext.Data.SaveAsImageFolder(sample, imageFolder)} PNG files to {imageFolder}/<class>/.");
}

// 1. One row per file: (ImagePath, Label) from the folder layout.
var files = Directory.GetDirectories(imageFolder).OrderBy(d => d, StringComparer.Ordinal)
    .SelectMany(dir => Directory.GetFiles(dir, "*.png").Order(StringComparer.Ordinal).Select(f => new ImageFile { ImagePath = Path.GetRelativePath(imageFolder, f), Label = Path.GetFileName(dir) }))
    .ToList();
IDataView data = mlContext.Data.LoadFromEnumerable(files);

// 2. ImageAnalytics in front: key labels, load, resize, grey, pixels in [0, 1] as Vector<Single, 1, 28, 28>.
var preprocessing = mlContext.Transforms.Conversion.MapValueToKey("Label")
    .Append(mlContext.Transforms.LoadImages("Image", imageFolder, nameof(ImageFile.ImagePath)))
    .Append(mlContext.Transforms.ResizeImages("Image", imageWidth: 28, imageHeight: 28))
    .Append(mlContext.Transforms.ConvertToGrayscale("Image"))
    .Append(mlContext.Transforms.ExtractPixels("Pixels", "Image", colorsToExtract: Microsoft.ML.Transforms.Image.ImagePixelExtractingEstimator.ColorBits.Red,
        scaleImage: 1f / 255f, outputAsFloatArray: true));
IDataView images = preprocessing.Fit(data).Transform(data);

// 3. A classifier trained on these images (small: the sample is about the data path, not accuracy).
var classifier = mlContext.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
{
    Model = new ModelSpec(ModelArchitecture.SmallCnn, Rho: 0.5), Epochs = 5, LearningRate = 2e-3, // Adam (the default) at twice its default rate
}).Fit(images);

// 4. Attack with FGSM (eps 16; it reads the Label key) and write the adversarial pixels as PNGs, one folder per class.
//    (On 10-class data such as this, step l.l. barely hurts: the least likely class is far from the true one.)
var attack = mlContext.Transforms.Fgsm(classifier, epsilon: 16, outputColumnName: "AdversarialPixels", inputColumnName: "Pixels").Fit(images);
IDataView attacked = attack.Transform(images);
int written = mlContext.Data.SaveAsImageFolder(attacked, outputFolder, pixelColumnName: "AdversarialPixels");
Console.WriteLine($"Wrote {written} adversarial PNGs to {outputFolder}/<class>/.");

// 5. How much the attack hurts, with ML.NET's metrics.
var clean = mlContext.MulticlassClassification.Evaluate(classifier.Transform(images), topKPredictionCount: 5);
var underAttack = mlContext.MulticlassClassification.Evaluate(classifier.Transform(
    mlContext.Transforms.CopyColumns("Pixels", "AdversarialPixels").Fit(attacked).Transform(attacked)), topKPredictionCount: 5);
Console.WriteLine($"Accuracy on these images: clean {clean.MicroAccuracy:P1}, FGSM eps 16 {underAttack.MicroAccuracy:P1}.");

/// <summary>One image file and its class (the folder name).</summary>
public sealed class ImageFile
{
    public string ImagePath { get; set; } = "";
    public string Label { get; set; } = "";
}
