using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// How a model's classes line up with the label column of the data it meets in a pipeline. ML.NET compares a label key
/// with <c>PredictedLabel</c> and <c>Score</c> slots by index, so the classifier writes its outputs in the label's key
/// order, and an attack reads true labels through the same map; names decide, never positions (<see cref="ClassMatch"/>).
/// </summary>
/// <param name="Names">Class names in output order: the label's key values when it has them, else the model's classes.</param>
/// <param name="ModelIndex">The model's class index for each output class; null when the orders are the same.</param>
internal sealed record ClassOrder(IReadOnlyList<string> Names, int[]? ModelIndex)
{
    public static ClassOrder For(DataViewSchema schema, string labelColumnName, IReadOnlyList<string> modelClasses)
    {
        var identity = new ClassOrder(modelClasses, null);
        if (schema.GetColumnOrNull(labelColumnName) is not { Type: KeyDataViewType } label) return identity;
        if (ImageFolder.KeyNames(label) is not { } names) return identity;
        var map = ClassMatch.Map(names, modelClasses, $"label column '{labelColumnName}'", "the model");
        return map.Select((m, i) => m == i).All(same => same) ? identity : new ClassOrder(names, map);
    }

    /// <summary>The model's class for a zero-based label of the data (-1, a missing key, stays -1).</summary>
    public long ToModel(long dataLabel) => ModelIndex is null || dataLabel < 0 ? dataLabel : ModelIndex[dataLabel];
}
