using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// Sends an evaluation's progress to <c>mlContext.Log</c> (a channel of the context's host, as the trainer's progress
/// goes through <c>AdversarialTrainingEstimator.Fit</c>'s channel) and on to the caller's <see cref="IProgress{T}"/>.
/// Reports are passed on synchronously, on the evaluating thread, in order.
/// </summary>
internal sealed class EvaluationLog : IProgress<EvaluationProgress>, IDisposable
{
    private readonly IChannel _channel;
    private readonly IProgress<EvaluationProgress>? _caller;

    public EvaluationLog(IHostEnvironment env, string name, IProgress<EvaluationProgress>? caller)
    {
        _channel = env.Register("AdversarialEvaluation").Start(name);
        _caller = caller;
    }

    /// <summary>Writes one line to the context's log.</summary>
    public void Info(string message) => _channel.Info(MessageSensitivity.None, message);

    public void Report(EvaluationProgress value)
    {
        Info(value.ToString());
        _caller?.Report(value);
    }

    public void Dispose() => _channel.Dispose();
}
