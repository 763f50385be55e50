namespace Microsoft.ML.Adversarial;

/// <summary>
/// An attack made of component attacks run in turn, each on the examples the earlier ones left unbroken (AutoAttack).
/// Evaluators report the per-example worst case beside it, and which component broke each example: a score-based
/// component (<see cref="Attack.NeedsGradients"/> false) breaking what the gradient ones could not is a sign of
/// gradient masking.
/// </summary>
public interface IEnsembleAttack
{
    /// <summary>The components in the order they run.</summary>
    IReadOnlyList<Attack> Components { get; }

    /// <summary>For each example of the last <see cref="Attack.Generate"/> call, the index in <see cref="Components"/> of the component that broke it; -1 when none did.</summary>
    int[] LastBrokenBy { get; }
}
