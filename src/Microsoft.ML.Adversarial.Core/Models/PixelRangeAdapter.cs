using Microsoft.ML.Adversarial;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// Feeds a network that takes another <see cref="InputRange"/> (say ImageNet's per-channel mean/std) with images in
/// [0, 1]: each channel is mapped linearly, <c>Min[c] + x * (Max[c] - Min[c])</c>. The map is per-channel, linear
/// and increasing, so an attack of eps/255 on the [0, 1] images is exactly the attack of eps pixels in the network's
/// units (the same signs, the same clipping).
/// </summary>
public sealed class PixelRangeAdapter : Module<Tensor, Tensor>, IReplicable
{
    private readonly Module<Tensor, Tensor> inner;
    private readonly InputRange _range;

    /// <summary>Wraps <paramref name="network"/>, which takes <paramref name="range"/>.</summary>
    public PixelRangeAdapter(Module<Tensor, Tensor> network, InputRange range) : base(nameof(PixelRangeAdapter))
    {
        inner = network ?? throw new ArgumentNullException(nameof(network));
        _range = range ?? throw new ArgumentNullException(nameof(range));
        RegisterComponents();
    }

    /// <summary>The range the wrapped network takes.</summary>
    public InputRange NetworkRange => _range;

    /// <summary>The wrapped network.</summary>
    public Module<Tensor, Tensor> Network => inner;

    /// <summary>Maps <paramref name="unitImages"/> in [0, 1] to the network's range and runs the network.</summary>
    public override Tensor forward(Tensor unitImages)
    {
        using var scope = NewDisposeScope();
        var min = _range.MinTensor(unitImages);
        var width = _range.MaxTensor(unitImages).Minus(min);
        return inner.call((unitImages * width).Plus(min)).MoveToOuterDisposeScope();
    }

    /// <summary>An adapter with the same range around a replica of the wrapped network.</summary>
    public Module<Tensor, Tensor> CreateReplica() =>
        new PixelRangeAdapter(ModelReplicas.TryCreate(inner) ?? throw new NotSupportedException(
            $"The library cannot rebuild the wrapped network ({inner.GetType().Name}) for a replica."), _range);

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing) inner.Dispose();
        base.Dispose(disposing);
    }
}
