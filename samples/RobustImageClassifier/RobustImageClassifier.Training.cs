// This file was shaped after the training file ML.NET Model Builder generates (MLModel.training.cs): a pipeline
// builder, a retrain method and a Train entry point that loads an image folder and saves the model. The trainer is
// the library's adversarial training (the paper's Algorithm 1, step l.l.) instead of Model Builder's image trainer.
using Microsoft.ML;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Transforms.Image;

namespace RobustImageClassifierSample;

public partial class RobustImageClassifier
{
    /// <summary>Side the images are resized to (Fashion-MNIST's 28; the network's input is 1 x 28 x 28).</summary>
    public const int ImageSide = 28;

    /// <summary>Epochs of adversarial training when <see cref="BuildPipeline"/> is not told otherwise.</summary>
    public const int DefaultEpochs = 3;

    /// <summary>
    /// Trains on the image folder <paramref name="inputDataFolder"/> (one sub-folder per class, its name the label) and
    /// saves the model to <paramref name="outputModelPath"/>.
    /// </summary>
    public static ITransformer Train(string outputModelPath, string inputDataFolder, int epochs = DefaultEpochs)
    {
        var mlContext = new MLContext(seed: 1);
        var data = LoadImageFromFolder(mlContext, inputDataFolder);
        var model = RetrainModel(mlContext, data, epochs);
        SaveModel(mlContext, model, data, outputModelPath);
        return model;
    }

    /// <summary>
    /// One <see cref="ModelInput"/> row (ImagePath, Label) per PNG or JPEG file of <paramref name="folder"/>: the
    /// sub-folder's name is the label, files are in ordinal order, so the data repeat.
    /// </summary>
    public static IDataView LoadImageFromFolder(MLContext mlContext, string folder)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Image folder '{folder}' does not exist. Give a folder with one sub-folder per class.");
        string[] extensions = { ".png", ".jpg", ".jpeg", ".bmp" };
        var rows = Directory.GetDirectories(folder).Order(StringComparer.Ordinal)
            .SelectMany(dir => Directory.GetFiles(dir).Where(f => extensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal)
                .Select(f => new ModelInput { ImagePath = Path.GetFullPath(f), Label = Path.GetFileName(dir) }))
            .ToList();
        if (rows.Count == 0)
            throw new InvalidDataException($"Image folder '{folder}' has no images in class sub-folders ({string.Join(", ", extensions)}).");
        return mlContext.Data.LoadFromEnumerable(rows);
    }

    /// <summary>Saves the model with the input schema of <paramref name="trainData"/> (the <see cref="ModelInput"/> columns).</summary>
    public static void SaveModel(MLContext mlContext, ITransformer model, IDataView trainData, string modelSavePath)
    {
        DataViewSchema dataViewSchema = trainData.Schema;
        using var fs = File.Create(modelSavePath);
        mlContext.Model.Save(model, dataViewSchema, fs);
    }

    /// <summary>Fits <see cref="BuildPipeline"/> on <paramref name="trainData"/>.</summary>
    public static ITransformer RetrainModel(MLContext mlContext, IDataView trainData, int epochs = DefaultEpochs)
    {
        var pipeline = BuildPipeline(mlContext, epochs);
        var model = pipeline.Fit(trainData);
        return model;
    }

    /// <summary>
    /// The images as the network reads them, as Model Builder's image pipelines do: the label as a key, the file loaded,
    /// resized, made grey and its pixels extracted to <c>Pixels</c> (Vector&lt;Single, 1, 28, 28&gt; in [0, 1]).
    /// </summary>
    public static IEstimator<ITransformer> BuildPreprocessing(MLContext mlContext)
    {
        return mlContext.Transforms.Conversion.MapValueToKey(outputColumnName: @"Label", inputColumnName: @"Label")
            .Append(mlContext.Transforms.LoadImages(outputColumnName: @"Image", imageFolder: null, inputColumnName: @"ImagePath"))
            .Append(mlContext.Transforms.ResizeImages(outputColumnName: @"Image", imageWidth: ImageSide, imageHeight: ImageSide, inputColumnName: @"Image"))
            .Append(mlContext.Transforms.ConvertToGrayscale(outputColumnName: @"Image", inputColumnName: @"Image"))
            .Append(mlContext.Transforms.ExtractPixels(outputColumnName: @"Pixels", inputColumnName: @"Image",
                colorsToExtract: ImagePixelExtractingEstimator.ColorBits.Red, scaleImage: 1f / 255f, outputAsFloatArray: true));
    }

    /// <summary>
    /// The whole training pipeline: <see cref="BuildPreprocessing"/>, adversarial training of a small CNN (half of each
    /// batch of 32 replaced by step l.l. examples at an epsilon drawn per image, Adam 1e-3), the predicted key as text.
    /// </summary>
    public static IEstimator<ITransformer> BuildPipeline(MLContext mlContext, int epochs = DefaultEpochs)
    {
        var pipeline = BuildPreprocessing(mlContext)
            .Append(mlContext.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
            {
                LabelColumnName = @"Label",
                FeatureColumnName = @"Pixels",
                Model = new ModelSpec(ModelArchitecture.SmallCnn),
                Method = "step-ll",
                AdversarialPerBatch = 16,
                Epochs = epochs,
                Seed = 1,
            }))
            .Append(mlContext.Transforms.Conversion.MapKeyToValue(outputColumnName: @"PredictedLabel", inputColumnName: @"PredictedLabel"));
        return pipeline;
    }
}
