using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// A black-box classifier as a module: any function from images [N, ...] to scores [N, K] (logits or
/// probabilities), for example an ML.NET transformer's Score column or an ONNX session. Score-based attacks
/// (<see cref="Square"/>) run on it; gradient-based ones refuse it with an error, since no gradient flows through.
/// Counts the images it scores.
/// </summary>
public sealed class ScoreFunctionModel : Module<Tensor, Tensor>
{
    private readonly Func<Tensor, Tensor> _scores;
    private readonly bool _probabilities;
    private long _queries;

    /// <param name="scores">Images [N, ...] to scores [N, K]; called with gradients off.</param>
    /// <param name="probabilities">
    /// The scores are probabilities (an ML.NET Score column): the module returns their logarithm, which are logits of
    /// the same softmax. Margins of saturated probabilities round to exactly 1 - 0 in float32, so a score-based search
    /// on them sees no change; in log space it does.
    /// </param>
    /// <param name="name">Module name shown in errors.</param>
    public ScoreFunctionModel(Func<Tensor, Tensor> scores, bool probabilities = false, string name = "score-function") : base(name)
    {
        _scores = scores ?? throw new ArgumentNullException(nameof(scores));
        _probabilities = probabilities;
    }

    /// <summary>
    /// The score function inside <paramref name="model"/> (itself or a submodule, e.g. behind a <c>PixelRangeAdapter</c>),
    /// or null for a model with gradients all through: what makes a model a black box for the evaluators.
    /// </summary>
    public static ScoreFunctionModel? Inside(Module<Tensor, Tensor> model) =>
        model as ScoreFunctionModel ?? model.modules().OfType<ScoreFunctionModel>().FirstOrDefault();

    /// <summary>Images scored so far (one query per image).</summary>
    public long Queries => Interlocked.Read(ref _queries);

    /// <summary>Scores <paramref name="input"/> with the function (no gradient), counting one query per image; probabilities come back as their logarithm.</summary>
    public override Tensor forward(Tensor input)
    {
        Interlocked.Add(ref _queries, input.shape[0]);
        using var _ = no_grad();
        var scores = _scores(input.detach());
        if (scores.dim() != 2 || scores.shape[0] != input.shape[0])
            throw new InvalidOperationException(
                $"The score function returned shape [{string.Join(", ", scores.shape)}] for {input.shape[0]} images; it must return [N, K], one row of class scores per image.");
        return _probabilities ? scores.AtLeast(1e-30).log() : scores;
    }
}
