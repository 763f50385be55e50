using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// Where seeded random draws happen. libtorch draws with a generator only on the generator's own device (a CUDA
/// generator for a CPU tensor is rejected), so every draw here names its device explicitly, and this is the one
/// check that the generator and the requested device agree, with a message that says how to fix it.
/// </summary>
internal static class RandomDevice
{
    /// <summary>
    /// The device to draw on: <paramref name="requested"/>, after checking that <paramref name="generator"/> (when given)
    /// lives there too.
    /// </summary>
    /// <param name="generator">The seeded generator, or null for libtorch's global one (any device).</param>
    /// <param name="requested">Where the samples must land.</param>
    /// <param name="what">The draw, for the message ("epsilon distribution |N(0, 8)| ...").</param>
    public static Device For(Generator? generator, Device requested, string what)
    {
        ArgumentNullException.ThrowIfNull(requested);
        if (generator is not null && !Same(generator.device, requested))
            throw new ArgumentException(
                $"{what}: the random generator is on {generator.device} but the samples are asked for on {requested}; libtorch draws only on the " +
                $"generator's device. Create the generator on the samples' device, e.g. new Generator(seed, {requested}), or pass null for the global one.",
                nameof(generator));
        return requested;
    }

    /// <summary>Same device type and, where both name one, the same index ("cuda" and "cuda:0" agree).</summary>
    internal static bool Same(Device a, Device b)
        => a.type == b.type && (a.index < 0 || b.index < 0 || a.index == b.index);
}
