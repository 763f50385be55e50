using System.Runtime.CompilerServices;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>A network that can build an untrained copy of itself (same architecture, same parameter names).</summary>
public interface IReplicable
{
    /// <summary>A new network of the same architecture; its weights are copied in by the caller.</summary>
    Module<Tensor, Tensor> CreateReplica();
}

/// <summary>
/// How to rebuild the networks the library made: <see cref="ModelSpec.Create"/> records a factory per network, so a
/// <see cref="ComputeModel"/> can make its replica (bfloat16, BatchNorm folded) of any network built by spec, loaded
/// from a model file or imported, without the caller passing the architecture again.
/// </summary>
internal static class ModelReplicas
{
    private static readonly ConditionalWeakTable<Module, Func<Module<Tensor, Tensor>>> Factories = new();

    public static T Register<T>(T model, Func<Module<Tensor, Tensor>> factory) where T : Module<Tensor, Tensor>
    {
        Factories.AddOrUpdate(model, factory);
        return model;
    }

    public static Module<Tensor, Tensor>? TryCreate(Module<Tensor, Tensor> model) =>
        model is IReplicable replicable ? replicable.CreateReplica()
        : Factories.TryGetValue(model, out var factory) ? factory()
        : null;

    /// <summary>True when <see cref="TryCreate"/> can rebuild <paramref name="model"/>.</summary>
    public static bool CanCreate(Module<Tensor, Tensor> model) =>
        model is PixelRangeAdapter adapter ? CanCreate(adapter.Network)
        : model is IReplicable || Factories.TryGetValue(model, out _);
}
