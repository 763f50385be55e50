using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;

namespace Microsoft.ML;

/// <summary>Adversarial training on <c>mlContext.MulticlassClassification.Trainers</c>.</summary>
public static class AdversarialTrainerCatalogExtensions
{
    /// <summary>
    /// Trains an image classifier with the paper's adversarial training (step l.l., k = 16 of m = 32, lambda = 0.3,
    /// epsilon ~ |N(0, 8)| truncated to [0, 16]). Pass <paramref name="adversarialPerBatch"/> = 0 for a clean baseline.
    /// </summary>
    /// <param name="catalog"><c>mlContext.MulticlassClassification.Trainers</c>.</param>
    /// <param name="labelColumnName">Key (or Single) label column.</param>
    /// <param name="featureColumnName">The image column, <c>Vector&lt;Single, C, H, W&gt;</c>. "Pixels" (what the library's loaders
    /// write), not ML.NET's "Features": the column is a shaped image that the attacks also write back, not a flat feature
    /// vector (docs/design.md, "Column names"). Pass "Features" if your pipeline's ExtractPixels writes that.</param>
    /// <param name="method">The method making the adversarial examples (<see cref="AttackMethod"/> or its name); null: step l.l.</param>
    /// <param name="adversarialPerBatch">k adversarial examples of each batch of m = 32; 0 trains clean.</param>
    /// <param name="epochs">Passes over the data.</param>
    /// <param name="model">The network; null: the default <see cref="ModelSpec"/>.</param>
    public static AdversarialTrainingEstimator AdversarialTraining(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = ColumnNames.Label, string featureColumnName = ColumnNames.Pixels, AttackMethod? method = null, int adversarialPerBatch = 16,
        int epochs = 1, ModelSpec? model = null)
        => AdversarialTraining(catalog, new AdversarialTrainingEstimator.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Method = method ?? AttackMethod.StepLL,
            AdversarialPerBatch = adversarialPerBatch, Epochs = epochs, Model = model ?? new ModelSpec(),
        });

    /// <summary>Adversarial (or clean) training with every option.</summary>
    public static AdversarialTrainingEstimator AdversarialTraining(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        AdversarialTrainingEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        TorchBackend.EnsureLoaded();
        return new AdversarialTrainingEstimator(MLNetEnvironment.From(catalog), options);
    }
}

/// <summary>
/// Attacks as transforms on <c>mlContext.Transforms</c>. The model attacked is an <see cref="ImageClassifierTransformer"/>
/// or a fitted chain holding one (nested chains too; what <c>pipeline.Fit</c> or <c>mlContext.Model.Load</c> returns): the
/// attack then runs the chain's steps before the classifier first and attacks the pixel column that reaches it.
/// Method names are those of <see cref="AttackMethod"/> (the CLI's <c>--method</c> values).
/// </summary>
public static class AdversarialTransformsCatalogExtensions
{
    /// <summary>Any registered method (<see cref="AttackMethod"/>, or its name: "fgsm", "step-ll", "iter-ll", "pgd-linf", ...) against <paramref name="sourceModel"/>.</summary>
    /// <param name="catalog"><c>mlContext.Transforms</c>.</param>
    /// <param name="sourceModel">The classifier attacked, or a fitted chain holding exactly one.</param>
    /// <param name="method">The method: <c>AttackMethod.StepLL</c> or its name "step-ll".</param>
    /// <param name="epsilon">Epsilon in pixel units of [0, 255].</param>
    /// <param name="outputColumnName">Adversarial pixel column written; null: the classifier's pixel column (replaced).</param>
    /// <param name="inputColumnName">Clean pixel column read; null: <paramref name="outputColumnName"/>.</param>
    /// <param name="labelColumnName">Key label column, read by the methods that use the true label.</param>
    public static AdversarialAttackEstimator AdversarialAttack(this TransformsCatalog catalog, ITransformer sourceModel, AttackMethod method,
        double epsilon = 16, string? outputColumnName = null, string? inputColumnName = null, string labelColumnName = ColumnNames.Label)
        => AdversarialAttack(catalog, sourceModel, new AdversarialAttackEstimator.Options
        {
            Method = method ?? throw new ArgumentNullException(nameof(method)), Epsilon = epsilon, OutputColumnName = outputColumnName,
            InputColumnName = inputColumnName, LabelColumnName = labelColumnName,
        });

    /// <summary>An attack with every option.</summary>
    /// <param name="catalog"><c>mlContext.Transforms</c>.</param>
    /// <param name="sourceModel">The classifier attacked, or a fitted chain holding exactly one.</param>
    /// <param name="options">Method, epsilon, columns, steps, seed.</param>
    public static AdversarialAttackEstimator AdversarialAttack(this TransformsCatalog catalog, ITransformer sourceModel, AdversarialAttackEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        TorchBackend.EnsureLoaded();
        return new AdversarialAttackEstimator(MLNetEnvironment.From(catalog), sourceModel, options);
    }

    /// <summary>FGSM (<see cref="AttackMethod.Fgsm"/>): <c>X + eps sign(grad J(X, y_true))</c>; needs the key label column.</summary>
    public static AdversarialAttackEstimator Fgsm(this TransformsCatalog catalog, ITransformer sourceModel, double epsilon = 16,
        string? outputColumnName = null, string? inputColumnName = null, string labelColumnName = ColumnNames.Label)
        => AdversarialAttack(catalog, sourceModel, AttackMethod.Fgsm, epsilon, outputColumnName, inputColumnName, labelColumnName);

    /// <summary>Step l.l. (<see cref="AttackMethod.StepLL"/>): <c>X - eps sign(grad J(X, y_LL))</c>; needs no label.</summary>
    public static AdversarialAttackEstimator StepLL(this TransformsCatalog catalog, ITransformer sourceModel, double epsilon = 16,
        string? outputColumnName = null, string? inputColumnName = null)
        => AdversarialAttack(catalog, sourceModel, AttackMethod.StepLL, epsilon, outputColumnName, inputColumnName);

    /// <summary>Step rnd. (<see cref="AttackMethod.StepRnd"/>): step l.l. towards a random wrong class; needs the key label column.</summary>
    public static AdversarialAttackEstimator StepRnd(this TransformsCatalog catalog, ITransformer sourceModel, double epsilon = 16,
        string? outputColumnName = null, string? inputColumnName = null, string labelColumnName = ColumnNames.Label)
        => AdversarialAttack(catalog, sourceModel, AttackMethod.StepRnd, epsilon, outputColumnName, inputColumnName, labelColumnName);

    /// <summary>Iter. l.l. (<see cref="AttackMethod.IterLL"/>): step l.l. repeated with alpha = 1 for min(eps + 4, 1.25 eps) steps.</summary>
    public static AdversarialAttackEstimator IterLL(this TransformsCatalog catalog, ITransformer sourceModel, double epsilon = 16,
        string? outputColumnName = null, string? inputColumnName = null)
        => AdversarialAttack(catalog, sourceModel, AttackMethod.IterLL, epsilon, outputColumnName, inputColumnName);

    /// <summary>Iter. basic (<see cref="AttackMethod.IterBasic"/>): FGSM repeated with alpha = 1 for min(eps + 4, 1.25 eps) steps; needs the key label column.</summary>
    public static AdversarialAttackEstimator IterBasic(this TransformsCatalog catalog, ITransformer sourceModel, double epsilon = 16,
        string? outputColumnName = null, string? inputColumnName = null, string labelColumnName = ColumnNames.Label)
        => AdversarialAttack(catalog, sourceModel, AttackMethod.IterBasic, epsilon, outputColumnName, inputColumnName, labelColumnName);
}
