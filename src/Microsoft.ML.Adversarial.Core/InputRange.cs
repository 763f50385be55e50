using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// How a model's input values relate to image pixels in [0, 255]. Attacks take epsilon in pixel units (as the
/// paper does) and use this to convert it to the model's units and to clip results to the valid range.
/// Each channel c maps pixel p to <c>Min[c] + p * (Max[c] - Min[c]) / 255</c>.
/// </summary>
public sealed class InputRange
{
    /// <summary>Smallest valid input value per channel (one value means every channel).</summary>
    public IReadOnlyList<float> Min { get; }
    /// <summary>Largest valid input value per channel.</summary>
    public IReadOnlyList<float> Max { get; }
    /// <summary>A short description shown in errors and reports, e.g. "[0, 1]".</summary>
    public string Description { get; }

    /// <summary>A range per channel.</summary>
    /// <param name="min">Smallest valid value per channel (one value means every channel).</param>
    /// <param name="max">Largest valid value per channel, as many as <paramref name="min"/>.</param>
    /// <param name="description">Shown in errors and reports; null describes the values.</param>
    [System.Text.Json.Serialization.JsonConstructor]
    public InputRange(IReadOnlyList<float> min, IReadOnlyList<float> max, string? description = null)
    {
        if (min.Count == 0 || min.Count != max.Count)
            throw new ArgumentException($"Min and Max need the same, non-zero number of channels; got {min.Count} and {max.Count}.");
        for (int c = 0; c < min.Count; c++)
            if (!float.IsFinite(min[c]) || !float.IsFinite(max[c]) || max[c] <= min[c])
                throw new ArgumentException($"Channel {c}: the range [{min[c]}, {max[c]}] is empty or not finite.");
        Min = min.ToArray();
        Max = max.ToArray();
        Description = description ?? (min.Count == 1 ? $"[{List(min)}, {List(max)}]" : $"per-channel [{List(min)}] to [{List(max)}]");
    }

    /// <summary>Numbers as a description shows them: invariant, since a description is stored in model files and compared.</summary>
    private static string List(IEnumerable<float> values) => string.Join(", ", values.Select(v => v.ToString(System.Globalization.CultureInfo.InvariantCulture)));

    /// <summary>Pixels divided by 255: [0, 1]. The default, and what the data loaders produce.</summary>
    public static InputRange UnitInterval { get; } = new(new[] { 0f }, new[] { 1f }, "[0, 1]");
    /// <summary>[-1, 1], as Inception v3 is usually fed.</summary>
    public static InputRange SymmetricUnit { get; } = new(new[] { -1f }, new[] { 1f }, "[-1, 1]");
    /// <summary>Raw pixel values [0, 255].</summary>
    public static InputRange Pixels { get; } = new(new[] { 0f }, new[] { 255f }, "[0, 255]");

    /// <summary>Per-channel normalisation <c>(p / 255 - mean) / std</c>, as torchvision's ImageNet models expect.</summary>
    public static InputRange Normalized(IReadOnlyList<float> mean, IReadOnlyList<float> std)
    {
        if (mean.Count != std.Count) throw new ArgumentException($"mean has {mean.Count} channels but std has {std.Count}.");
        if (std.Any(s => !(s > 0))) throw new ArgumentException("Every std must be positive.", nameof(std));
        return new InputRange(mean.Select((m, c) => (0 - m) / std[c]).ToArray(), mean.Select((m, c) => (1 - m) / std[c]).ToArray(),
            $"normalised (mean [{List(mean)}], std [{List(std)}])");
    }

    /// <summary>ImageNet normalisation used by torchvision.</summary>
    public static InputRange ImageNet { get; } = Normalized(new[] { 0.485f, 0.456f, 0.406f }, new[] { 0.229f, 0.224f, 0.225f });

    /// <summary>Number of channels the range gives (1 means the same range for every channel).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public int Channels => Min.Count;

    /// <summary>Model units per pixel value, per channel.</summary>
    public float[] UnitsPerPixel() => Min.Select((m, c) => (Max[c] - m) / 255f).ToArray();

    /// <summary>A tensor that broadcasts per-channel values over <paramref name="like"/> ([N, C, ...] or any shape for one channel).</summary>
    internal Tensor ChannelTensor(IReadOnlyList<float> values, Tensor like)
    {
        if (values.Count == 1) return torch.tensor(values[0], dtype: like.dtype, device: like.device);
        if (like.dim() < 2 || like.shape[1] != values.Count)
            throw new ArgumentException($"Input range {Description} has {values.Count} channels, but the images have shape [{string.Join(", ", like.shape)}]; expected [N, {values.Count}, ...].");
        var shape = new long[like.dim()];
        Array.Fill(shape, 1L);
        shape[1] = values.Count;
        return torch.tensor(values.ToArray(), dtype: like.dtype, device: like.device).view(shape);
    }

    /// <summary>
    /// Why <paramref name="images"/> ([N, C, ...]) cannot be inputs of a model on this range, or null when they can:
    /// NaN or infinite values, a channel count the range does not have, or values outside the range by more than 1e-4
    /// of its width (say pixels of 0..255 fed to a model on [0, 1]). The one check attacks, training and scoring use.
    /// </summary>
    public string? Problem(Tensor images)
    {
        if (Channels > 1 && (images.dim() < 2 || images.shape[1] != Channels))
            return $"the input range {this} has {Channels} channels, but the images have shape [{string.Join(", ", images.shape)}]";
        using var scope = NewDisposeScope();
        if (!torch.isfinite(images).all().item<bool>())
            return "the images contain NaN or infinite values";
        float tol = 1e-4f * Max.Zip(Min, (a, b) => a - b).Max();
        // Held Scalars only (HeldScalars): this runs in every attack, training and scoring batch.
        if (images.lt(MinTensor(images).Minus(tol)).any().item<bool>() || images.gt(MaxTensor(images).Plus(tol)).any().item<bool>())
            return $"the images lie in [{images.min().item<float>()}, {images.max().item<float>()}] but the model takes {this}";
        return null;
    }

    /// <summary>Throws <see cref="ArgumentException"/> with <see cref="Problem"/> and <paramref name="fix"/> (what to do on the caller's path).</summary>
    public void Check(Tensor images, string fix, string? paramName = null)
    {
        if (Problem(images) is { } problem)
            throw new ArgumentException($"{char.ToUpperInvariant(problem[0])}{problem[1..]}. {fix}", paramName);
    }

    /// <summary>Lower bounds as a tensor broadcastable to the images.</summary>
    internal Tensor MinTensor(Tensor like) => ChannelTensor(Min, like);
    internal Tensor MaxTensor(Tensor like) => ChannelTensor(Max, like);
    internal Tensor UnitsPerPixelTensor(Tensor like) => ChannelTensor(UnitsPerPixel(), like);

    /// <summary>The description.</summary>
    public override string ToString() => Description;
}
