namespace Microsoft.ML.Adversarial;

/// <summary>
/// The column names every estimator, transformer and reader of this library defaults to: ML.NET's own for the label,
/// score and predicted label (what <c>MulticlassClassification.Evaluate</c> reads), and "Pixels" for the image tensor.
/// </summary>
public static class ColumnNames
{
    /// <summary>The pixel column, <c>Vector&lt;Single, C, H, W&gt;</c>.</summary>
    public const string Pixels = "Pixels";
    /// <summary>The label column (ML.NET's default), a key of the class names.</summary>
    public const string Label = "Label";
    /// <summary>The score column (ML.NET's default): class probabilities.</summary>
    public const string Score = "Score";
    /// <summary>The predicted label column (ML.NET's default).</summary>
    public const string PredictedLabel = "PredictedLabel";
}
