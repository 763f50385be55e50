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
    public static AdversarialTrainingEstimator AdversarialTraining(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string labelColumnName = "Label", string featureColumnName = "Pixels", string method = "step-ll", int adversarialPerBatch = 16,
        int epochs = 1, ModelSpec? model = null)
        => AdversarialTraining(catalog, new AdversarialTrainingEstimator.Options
        {
            LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName, Method = method,
            AdversarialPerBatch = adversarialPerBatch, Epochs = epochs, Model = model ?? new ModelSpec(),
        });

    /// <summary>Adversarial (or clean) training with every option.</summary>
    public static AdversarialTrainingEstimator AdversarialTraining(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        AdversarialTrainingEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AdversarialTrainingEstimator(MLNetEnvironment.From(catalog), options);
    }
}

/// <summary>Attacks as transforms on <c>mlContext.Transforms</c>.</summary>
public static class AdversarialTransformsCatalogExtensions
{
    /// <summary>Any registered method ("fgsm", "step-ll", "iter-ll", "pgd-linf", ...) against <paramref name="sourceModel"/>.</summary>
    public static AdversarialAttackEstimator AdversarialAttack(this TransformsCatalog catalog, ImageClassifierTransformer sourceModel, string method,
        double epsilon = 16, string outputColumnName = "Pixels", string? inputColumnName = null, string labelColumnName = "Label")
        => AdversarialAttack(catalog, sourceModel, new AdversarialAttackEstimator.Options
        {
            Method = method, Epsilon = epsilon, OutputColumnName = outputColumnName, InputColumnName = inputColumnName, LabelColumnName = labelColumnName,
        });

    /// <summary>An attack with every option.</summary>
    public static AdversarialAttackEstimator AdversarialAttack(this TransformsCatalog catalog, ImageClassifierTransformer sourceModel, AdversarialAttackEstimator.Options options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new AdversarialAttackEstimator(MLNetEnvironment.From(catalog), sourceModel, options);
    }

    /// <summary>FGSM: <c>X + eps sign(grad J(X, y_true))</c>; needs the key label column.</summary>
    public static AdversarialAttackEstimator Fgsm(this TransformsCatalog catalog, ImageClassifierTransformer sourceModel, double epsilon = 16,
        string outputColumnName = "Pixels", string? inputColumnName = null, string labelColumnName = "Label")
        => AdversarialAttack(catalog, sourceModel, "fgsm", epsilon, outputColumnName, inputColumnName, labelColumnName);

    /// <summary>Step l.l.: <c>X - eps sign(grad J(X, y_LL))</c>; needs no label.</summary>
    public static AdversarialAttackEstimator StepLeastLikely(this TransformsCatalog catalog, ImageClassifierTransformer sourceModel, double epsilon = 16,
        string outputColumnName = "Pixels", string? inputColumnName = null)
        => AdversarialAttack(catalog, sourceModel, "step-ll", epsilon, outputColumnName, inputColumnName);

    /// <summary>Iter. l.l.: step l.l. repeated with alpha = 1 for min(eps + 4, 1.25 eps) steps.</summary>
    public static AdversarialAttackEstimator IterativeLeastLikely(this TransformsCatalog catalog, ImageClassifierTransformer sourceModel, double epsilon = 16,
        string outputColumnName = "Pixels", string? inputColumnName = null)
        => AdversarialAttack(catalog, sourceModel, "iter-ll", epsilon, outputColumnName, inputColumnName);

    /// <summary>Iter. basic: FGSM repeated with alpha = 1 for min(eps + 4, 1.25 eps) steps; needs the key label column.</summary>
    public static AdversarialAttackEstimator BasicIterative(this TransformsCatalog catalog, ImageClassifierTransformer sourceModel, double epsilon = 16,
        string outputColumnName = "Pixels", string? inputColumnName = null, string labelColumnName = "Label")
        => AdversarialAttack(catalog, sourceModel, "iter-basic", epsilon, outputColumnName, inputColumnName, labelColumnName);
}
