using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>A step towards a class the user chooses: <c>X - eps * sign(grad_X J(X, y_target))</c>.</summary>
public sealed class StepTarget : OneStepAttack
{
    /// <summary>Creates the attack.</summary>
    /// <param name="targetClass">Index of the class to step towards (0-based).</param>
    /// <param name="options">Its settings; null takes the defaults (eps 16, [0, 1] images).</param>
    public StepTarget(int targetClass, AttackOptions? options = null) : base("step-target", options ?? new AttackOptions())
    {
        if (targetClass < 0) throw new ArgumentOutOfRangeException(nameof(targetClass), targetClass, "The target class must be >= 0.");
        TargetClass = targetClass;
    }

    /// <summary>Index of the class the step goes towards.</summary>
    public int TargetClass { get; }

    /// <inheritdoc/>
    protected override Tensor Direction(AttackBatch b)
        => -b.InputGradient(b.Clean, logits =>
        {
            if (TargetClass >= logits.shape[1])
                throw new ArgumentOutOfRangeException(nameof(TargetClass), TargetClass, $"Target class {TargetClass} is not below the model's {logits.shape[1]} classes.");
            return AttackBatch.CrossEntropy(logits, HeldScalars.Full(b.Count, TargetClass, ScalarType.Int64, logits.device));
        }).sign();
}
