using TorchSharp;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// Puts a model (and every submodule) in the requested mode and restores each module's own mode on dispose: a
/// submodule the caller froze in evaluation mode (say a BatchNorm) comes back frozen. The one place attacks, evaluators
/// and transfer studies switch modes.
/// </summary>
public sealed class ModelMode : IDisposable
{
    private readonly List<(Module Module, bool Training)> _saved;

    private ModelMode(List<(Module, bool)> saved) => _saved = saved;

    /// <summary>Puts <paramref name="model"/> in training or evaluation mode until the result is disposed.</summary>
    /// <param name="model">The model.</param>
    /// <param name="training">True for training mode, false for evaluation mode.</param>
    public static ModelMode Set(Module model, bool training) => Set(new[] { model }, training);

    /// <summary>Several models at once (shared ones counted once); all are restored on dispose.</summary>
    public static ModelMode Set(IEnumerable<Module> models, bool training)
    {
        var saved = new List<(Module, bool)>();
        // A ComputeModel runs its master's mode: set both.
        var distinct = models.SelectMany(m => m is ComputeModel c ? new Module[] { c, c.Master } : new[] { m }).Distinct().ToList();
        foreach (var model in distinct)
        {
            saved.Add((model, model.training));
            saved.AddRange(model.modules().Select(m => (m, m.training)));
        }
        foreach (var model in distinct) model.train(training);
        return new ModelMode(saved);
    }

    /// <summary>Restores every module's own mode.</summary>
    public void Dispose()
    {
        // Pre-order: a parent's recursive train() first, then each child's own flag.
        foreach (var (module, training) in _saved) module.train(training);
    }
}
