namespace Microsoft.ML.Adversarial.Evaluation;

/// <summary>
/// Progress of an evaluation: images done out of the total, and the current step. Reports come after each method of
/// each batch (<see cref="Method"/> set) and after each whole batch (<see cref="Method"/> null); every count only grows,
/// and the last report has <c>Done == Total</c>, <c>BatchesDone == Batches</c> and <c>StepsDone == Steps</c>.
/// </summary>
/// <param name="Stage">What runs: "evaluating MODEL" or "transfer from SOURCE".</param>
/// <param name="Done">Images whose batch is finished (every method and epsilon).</param>
/// <param name="Total">Images the whole evaluation goes through (times the number of sources for transfer).</param>
/// <param name="ImagesPerSecond">Throughput so far.</param>
public sealed record EvaluationProgress(string Stage, long Done, long Total, double ImagesPerSecond)
{
    /// <summary>The method whose adversarial examples were just made and scored; null in a batch-finished report.</summary>
    public string? Method { get; init; }
    /// <summary>The epsilons (pixel units) <see cref="Method"/> ran at.</summary>
    public IReadOnlyList<double>? Epsilons { get; init; }
    /// <summary>Batches finished.</summary>
    public long BatchesDone { get; init; }
    /// <summary>Batches in all.</summary>
    public long Batches { get; init; }
    /// <summary>(batch, method) steps finished: the finest unit of work reported.</summary>
    public long StepsDone { get; init; }
    /// <summary>(batch, method) steps in all.</summary>
    public long Steps { get; init; }
    /// <summary>Fraction of the work done, in [0, 1], by steps (by images when no steps are counted).</summary>
    public double Fraction => Steps > 0 ? (double)StepsDone / Steps : Total > 0 ? (double)Done / Total : 0;

    /// <inheritdoc/>
    public override string ToString()
        => $"{Stage}: {(Method is null ? "" : $"{Method}{(Epsilons is { Count: > 0 } e ? $" at eps {string.Join("/", e)}" : "")}, ")}" +
           $"batch {BatchesDone}/{Batches}, {Done}/{Total} images, {Fraction:P0}, {ImagesPerSecond:F1} images/s";
}
