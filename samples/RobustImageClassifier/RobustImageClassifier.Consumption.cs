// This file was shaped after the consumption file ML.NET Model Builder generates (MLModel.consumption.cs): the input
// and output classes and a lazily created prediction engine over the saved model.
using Microsoft.ML;
using Microsoft.ML.Data;

namespace RobustImageClassifierSample;

public partial class RobustImageClassifier
{
    /// <summary>Model input class: one image file and its class.</summary>
    public class ModelInput
    {
        /// <summary>The class (the name of the image's sub-folder); empty when predicting.</summary>
        [LoadColumn(0)]
        [ColumnName(@"Label")]
        public string Label { get; set; } = "";

        /// <summary>Path of the image file (PNG, JPEG, BMP).</summary>
        [LoadColumn(1)]
        [ColumnName(@"ImagePath")]
        public string ImagePath { get; set; } = "";
    }

    /// <summary>Model output class: the predicted class and the probability of every class.</summary>
    public class ModelOutput
    {
        /// <summary>The image the prediction is for.</summary>
        [ColumnName(@"ImagePath")]
        public string ImagePath { get; set; } = "";

        /// <summary>The predicted class name.</summary>
        [ColumnName(@"PredictedLabel")]
        public string PredictedLabel { get; set; } = "";

        /// <summary>Class probabilities, in the order of the label's key values.</summary>
        [ColumnName(@"Score")]
        public float[] Score { get; set; } = Array.Empty<float>();
    }

    /// <summary>The model file <see cref="Predict"/> loads (set it before the first prediction).</summary>
    public static string MLNetModelPath { get; set; } = Path.GetFullPath("RobustImageClassifier.mlnet");

    /// <summary>The prediction engine, created on first use from <see cref="MLNetModelPath"/>.</summary>
    public static readonly Lazy<PredictionEngine<ModelInput, ModelOutput>> PredictEngine = new(() => CreatePredictEngine(), true);

    /// <summary>Predicts the class of one image.</summary>
    public static ModelOutput Predict(ModelInput input)
    {
        var predEngine = PredictEngine.Value;
        return predEngine.Predict(input);
    }

    private static PredictionEngine<ModelInput, ModelOutput> CreatePredictEngine()
    {
        var mlContext = new MLContext();
        ITransformer mlModel = mlContext.Model.Load(MLNetModelPath, out var _);
        return mlContext.Model.CreatePredictionEngine<ModelInput, ModelOutput>(mlModel);
    }
}
