using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Backward Pass Differentiable Approximation (Athalye, Carlini and Wagner, 2018) with the identity: while a gradient is
/// taken, each named layer's output <c>f(x)</c> is replaced by <c>x + (f(x) - x).detach()</c>, equal in value and with
/// the gradient of x. Forward hooks, so the model is not changed and the hooks go when the gradient is done.
/// </summary>
internal static class Bpda
{
    /// <summary>Hooks the named layers of <paramref name="model"/>; disposing removes them. Nothing when none are named.</summary>
    public static IDisposable? Apply(Module<Tensor, Tensor> model, IReadOnlyList<string> layers, string attack)
    {
        if (layers.Count == 0) return null;
        var removers = new List<IDisposable>();
        try
        {
            // A fast-path model runs on its master or its replica: both get the hooks.
            var networks = model is Models.ComputeModel compute ? compute.Networks.ToList() : new List<Module<Tensor, Tensor>> { model };
            foreach (var network in networks)
                foreach (var name in layers)
                {
                    var (path, layer) = Find(network, name, attack);
                    removers.Add(new Remover(layer.register_forward_hook((_, input, output) => Identity(input, output, path, attack))));
                }
        }
        catch
        {
            foreach (var r in removers) r.Dispose();
            throw;
        }
        return new Removers(removers);
    }

    private static Tensor Identity(Tensor input, Tensor output, string path, string attack)
    {
        if (!input.shape.SequenceEqual(output.shape))
            throw new InvalidOperationException(
                $"Attack '{attack}': BPDA layer '{path}' maps [{string.Join(", ", input.shape)}] to [{string.Join(", ", output.shape)}]; the identity " +
                "can stand in for the backward pass only of a layer that keeps its input's shape. Name the non-differentiable layer itself (rounding, quantisation).");
        return input.Plus(output.Minus(input).detach());
    }

    /// <summary>The layer named exactly <paramref name="name"/>, or else the one whose name ends with "." + it.</summary>
    private static (string Path, Module<Tensor, Tensor> Layer) Find(Module<Tensor, Tensor> model, string name, string attack)
    {
        var all = model.named_modules().Where(m => m.name.Length > 0).ToList();
        var hits = all.Where(m => m.name == name).ToList();
        if (hits.Count == 0) hits = all.Where(m => m.name.EndsWith("." + name, StringComparison.Ordinal)).ToList();
        if (hits.Count > 1)
            throw new ArgumentException($"Attack '{attack}': BPDA layer '{name}' matches {hits.Count} layers ({string.Join(", ", hits.Select(h => h.name))}); give the full name.", nameof(AttackOptions.BpdaLayers));
        if (hits.Count == 0)
            throw new ArgumentException($"Attack '{attack}': the model has no layer named '{name}' for BPDA. Its layers: " +
                $"{string.Join(", ", all.Select(m => m.name).Take(30))}{(all.Count > 30 ? ", ..." : "")}.", nameof(AttackOptions.BpdaLayers));
        if (hits[0].module is not Module<Tensor, Tensor> layer)
            throw new ArgumentException($"Attack '{attack}': BPDA layer '{hits[0].name}' is a {hits[0].module.GetType().Name}, not a layer from one tensor to one tensor.", nameof(AttackOptions.BpdaLayers));
        return (hits[0].name, layer);
    }

    private sealed class Remover(HookableModule<Func<Module<Tensor, Tensor>, Tensor, Tensor>, Func<Module<Tensor, Tensor>, Tensor, Tensor, Tensor>>.HookRemover remover) : IDisposable
    {
        public void Dispose() => remover.remove();
    }

    private sealed class Removers(List<IDisposable> removers) : IDisposable
    {
        public void Dispose()
        {
            foreach (var r in removers) r.Dispose();
        }
    }
}
