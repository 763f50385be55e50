using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// A fitted model taken apart at its image classifier: the steps that make the pixels (<see cref="Prefix"/>), the
/// <see cref="Classifier"/>, and what follows it. One home for "find the classifier in a pipeline", used by the attack
/// transforms and the evaluators so that they take what <c>pipeline.Fit</c> or <c>mlContext.Model.Load</c> returned.
/// </summary>
/// <param name="Prefix">The fitted steps before the classifier (they make its pixel column from the raw rows); null when there are none.</param>
/// <param name="Classifier">The one <see cref="ImageClassifierTransformer"/> of the model.</param>
/// <param name="Position">Its position among the model's steps, nested chains flattened.</param>
internal sealed record ClassifierInChain(ITransformer? Prefix, ImageClassifierTransformer Classifier, int Position)
{
    /// <summary>Finds the one classifier in <paramref name="model"/> (a classifier itself, or a chain, nested chains too).</summary>
    public static ClassifierInChain Find(ITransformer model, string parameterName = "model")
    {
        ArgumentNullException.ThrowIfNull(model, parameterName);
        if (model is ImageClassifierTransformer direct) return new ClassifierInChain(null, direct, 0);
        var steps = new List<ITransformer>();
        Flatten(model, steps);
        var found = steps.Select((t, i) => (t, i)).Where(p => p.t is ImageClassifierTransformer).ToList();
        if (found.Count == 0)
            throw new ArgumentException($"The model has no ImageClassifierTransformer to attack; its steps are {Show(steps)}. Pass the classifier that " +
                "AdversarialTraining's Fit, Transforms.ImageClassifier or Model.LoadImageClassifier returned, or a fitted chain that contains it.", parameterName);
        if (found.Count > 1)
            throw new ArgumentException($"The model has {found.Count} ImageClassifierTransformers (steps {string.Join(" and ", found.Select(f => f.i))} of {Show(steps)}); " +
                "an attack needs one source. Pass the one to attack, for example (ImageClassifierTransformer)chain.ElementAt(" + found[0].i + ").", parameterName);
        int at = found[0].i;
        ITransformer? prefix = at == 0 ? null : new TransformerChain<ITransformer>(steps.Take(at).ToArray());
        return new ClassifierInChain(prefix, (ImageClassifierTransformer)found[0].t, at);
    }

    /// <summary>Whether <paramref name="model"/> holds at least one <see cref="ImageClassifierTransformer"/> (itself, or a step of a chain, nested chains too).</summary>
    public static bool Contains(ITransformer model)
    {
        var steps = new List<ITransformer>();
        Flatten(model, steps);
        return steps.Any(s => s is ImageClassifierTransformer);
    }

    /// <summary><paramref name="data"/> through the steps before the classifier: the rows the classifier reads.</summary>
    public IDataView PixelsOf(IDataView data) => Prefix?.Transform(data) ?? data;

    private static void Flatten(ITransformer model, List<ITransformer> steps)
    {
        if (model is IEnumerable<ITransformer> chain)
            foreach (var step in chain) Flatten(step, steps);
        else steps.Add(model);
    }

    private static string Show(List<ITransformer> steps)
        => steps.Count == 0 ? "none (an empty chain)" : "[" + string.Join(", ", steps.Select(s => s.GetType().Name)) + "]";
}

/// <summary>Finding the image classifier inside a fitted ML.NET model.</summary>
public static class ImageClassifierModelExtensions
{
    /// <summary>
    /// The one <see cref="ImageClassifierTransformer"/> in <paramref name="model"/>: the model itself, or the step of a fitted
    /// chain (nested chains too) that holds it. Throws <see cref="ArgumentException"/> naming the steps when there is none or
    /// more than one. The attack transforms and evaluators take the whole chain already; use this where a classifier itself
    /// is needed (the dictionary of <c>EvaluateTransfer</c>).
    /// </summary>
    public static ImageClassifierTransformer FindImageClassifier(this ITransformer model) => ClassifierInChain.Find(model).Classifier;
}
