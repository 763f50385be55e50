using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

// ModelIO, its second job: weights in and out of a network the caller or a description built (PyTorch state dicts and
// TorchSharp weights), checked by name and shape before anything is copied.
public static partial class ModelIO
{
    /// <summary>
    /// Loads weights into an existing module from a TorchSharp weights file (<c>module.save</c>) or a PyTorch state dict
    /// (<c>torch.save(model.state_dict(), path)</c>, e.g. torchvision's Inception v3 into <see cref="InceptionV3"/>).
    /// Every parameter and buffer must be present with the same name and shape; otherwise nothing is changed and the
    /// error lists the differences.
    /// </summary>
    /// <param name="model">The network to fill.</param>
    /// <param name="path">The weights file.</param>
    /// <param name="skippedPrefixes">File entries under these prefixes that the model does not have are skipped (training-only
    /// heads such as GoogLeNet's aux1/aux2, see <see cref="TorchVisionModels.TrainingOnlyPrefixes"/>); null skips none.</param>
    public static void LoadWeights(Module<Tensor, Tensor> model, string path, IReadOnlyCollection<string>? skippedPrefixes = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        skippedPrefixes ??= Array.Empty<string>();
        if (!File.Exists(path)) throw new FileNotFoundException($"Weights file '{path}' does not exist.", path);
        using var scope = NewDisposeScope();
        Dictionary<string, Tensor> source;
        var kind = DetectFormat(path);
        try
        {
            source = kind == WeightsFormat.PyTorch ? ReadPyTorchStateDict(path) : ReadTorchSharpStateDict(path);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // The PyTorch reader takes tensors that are contiguous and start their storage; a view saved as it was (w.t(),
            // a slice) is not a damaged file, so it is named with the fix rather than asked about.
            if (kind == WeightsFormat.PyTorch && PickledTensorLayouts.Read(path)?.Where(t => !t.Readable).ToList() is { Count: > 0 } views)
            {
                var first = views[0];
                throw new InvalidDataException(
                    $"'{path}': tensor '{first.Name}' is a view (shape [{string.Join(", ", first.Shape)}], strides [{string.Join(", ", first.Strides)}], " +
                    $"storage offset {first.Offset}: a transposed or sliced tensor saved as it was), not a contiguous tensor of its own" +
                    (views.Count > 1 ? $", and so are {views.Count - 1} more ({string.Join(", ", views.Skip(1).Take(5).Select(v => $"'{v.Name}'"))}{(views.Count > 6 ? ", ..." : "")})" : "") +
                    $". This reader takes contiguous tensors only ({FirstLine(e.Message)}). In Python, save contiguous copies: " +
                    "torch.save({k: v.contiguous().clone() for k, v in sd.items()}, path), and load that file. Nothing was loaded.", e);
            }
            throw new InvalidDataException($"'{path}' could not be read as {kind} weights ({e.Message}). Is the file complete?", e);
        }
        var target = model.state_dict();
        foreach (var key in source.Keys.Where(k => !target.ContainsKey(k) && skippedPrefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList())
            source.Remove(key);
        if (Differences(target, source, "in the file", "in the model") is { } differences)
            throw new InvalidDataException(
                $"'{path}' does not fit {model.GetType().Name}; nothing was loaded.{differences}" +
                (WrappingPrefix(target, source) is { } prefix
                    ? $" Every name in the file starts with '{prefix}' and fits once that is removed: the state dict was saved from a wrapper " +
                      $"(DataParallel/DistributedDataParallel save 'module.', Lightning 'model.'). Save the inner module's state dict " +
                      $"(torch.save(model.{prefix.TrimEnd('.')}.state_dict(), path)), or remove the prefix from the keys, and load that."
                    : " Build the model with the architecture, width (rho) and class count the weights were trained with."));
        using var _ = no_grad();
        foreach (var (name, t) in target)
            t.copy_(source[name].to(t.dtype));
    }

    /// <summary>
    /// Builds the network <paramref name="description"/> names and loads a PyTorch state dict (or TorchSharp weights)
    /// into it, after checking every name and shape (training-only heads excepted, see
    /// <see cref="TorchVisionModels.TrainingOnlyPrefixes"/>). The network is returned in evaluation mode.
    /// </summary>
    public static Module<Tensor, Tensor> Import(ModelDescription description, string weightsPath, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(description);
        var model = description.CreateModel();
        try
        {
            LoadWeights(model, weightsPath, TorchVisionModels.TrainingOnlyPrefixes(description.Spec));
        }
        catch
        {
            model.Dispose();
            throw;
        }
        if (device is not null) model.to(device);
        model.eval();
        return model;
    }

    /// <summary>
    /// Checks that <paramref name="model"/> is the network <paramref name="description"/> rebuilds (same parameter and
    /// buffer names and shapes), so that a model file written from it loads again. Throws <see cref="ArgumentException"/>
    /// listing the differences otherwise.
    /// </summary>
    public static void CheckArchitecture(Module<Tensor, Tensor> model, ModelDescription description)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(description);
        using var scope = NewDisposeScope();
        using var rebuilt = description.CreateModel();
        var differences = Differences(rebuilt.state_dict(), model.state_dict(), "in the module", $"in {description.Spec.Architecture}");
        if (differences is not null)
            throw new ArgumentException($"The module is not the {description.Spec} network for {description.Channels}x{description.Height}x{description.Width} " +
                $"images and {description.Classes} classes, so a model file could not rebuild it.{differences} Give the architecture it was built as, or none " +
                "(it can then be used but not saved).", nameof(model));
    }

    /// <summary>
    /// The prefix ("module.", "model.", ...) that every name in <paramref name="source"/> has and whose removal makes the
    /// names and shapes fit <paramref name="target"/> exactly; null when there is none.
    /// </summary>
    private static string? WrappingPrefix(IReadOnlyDictionary<string, Tensor> target, IReadOnlyDictionary<string, Tensor> source)
    {
        if (source.Count == 0) return null;
        string first = source.Keys.First();
        for (int dot = first.IndexOf('.'); dot > 0; dot = first.IndexOf('.', dot + 1))
        {
            string prefix = first[..(dot + 1)];
            if (!source.Keys.All(k => k.StartsWith(prefix, StringComparison.Ordinal))) return null;
            var stripped = source.ToDictionary(kv => kv.Key[prefix.Length..], kv => kv.Value);
            if (Differences(target, stripped, "", "") is null) return prefix;
        }
        return null;
    }

    /// <summary>Names missing from <paramref name="source"/>, names it has beyond <paramref name="target"/>, and shapes that differ; null when none.</summary>
    private static string? Differences(IReadOnlyDictionary<string, Tensor> target, IReadOnlyDictionary<string, Tensor> source, string inSource, string inTarget)
    {
        var missing = target.Keys.Where(k => !source.ContainsKey(k)).ToList();
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k)).ToList();
        var wrongShape = target.Where(t => source.TryGetValue(t.Key, out var v) && !v.shape.SequenceEqual(t.Value.shape))
            .Select(t => $"{t.Key} is [{string.Join(", ", source[t.Key].shape)}] {inSource}, [{string.Join(", ", t.Value.shape)}] {inTarget}").ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count == 0) return null;
        static string List(string what, List<string> items) =>
            items.Count == 0 ? "" : $" {what} ({items.Count}): {string.Join("; ", items.Take(5))}{(items.Count > 5 ? "; ..." : "")}.";
        return List($"Missing {inSource}", missing) + List($"Not {inTarget}", unexpected) + List("Different shapes", wrongShape);
    }

    private static Dictionary<string, Tensor> ReadPyTorchStateDict(string path)
    {
        using var stream = File.OpenRead(path);
        var table = PyTorchUnpickler.UnpickleStateDict(stream, leaveOpen: false);
        var result = new Dictionary<string, Tensor>();
        foreach (System.Collections.DictionaryEntry e in table)
            if (e.Value is Tensor t) result[(string)e.Key] = t;
        return result;
    }

    private static Dictionary<string, Tensor> ReadTorchSharpStateDict(string path)
    {
        // TorchSharp's format: count, then (name, tensor) pairs; read it into a twin dictionary without touching the model.
        using var reader = new BinaryReader(File.OpenRead(path));
        long count = DecodeLength(reader);
        var result = new Dictionary<string, Tensor>();
        for (long i = 0; i < count; i++)
        {
            string name = reader.ReadString();
            result[name] = TensorExtensionMethods.Load(reader);
        }
        return result;
    }

    // TorchSharp writes counts as 7-bit groups, low bits first, high bit set on all but the last byte.
    private static long DecodeLength(BinaryReader reader)
    {
        long value = 0;
        for (int shift = 0; shift < 63; shift += 7)
        {
            long b = reader.ReadByte();
            value |= (b & 0x7f) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw new InvalidDataException("Malformed entry count.");
    }

    /// <summary>Saves a module's weights as a PyTorch state dict that <c>model.load_state_dict(torch.load(path))</c> reads.</summary>
    public static void SavePyTorch(Module<Tensor, Tensor> model, string path) => model.save_py(path);

    /// <summary>The names of a module's parameters and buffers, in state-dict order.</summary>
    public static IReadOnlyList<string> ParameterNames(Module model) => model.state_dict().Keys.ToList();

    internal enum WeightsFormat { TorchSharp, PyTorch }

    internal static WeightsFormat DetectFormat(string path)
    {
        Span<byte> head = stackalloc byte[4];
        using var f = File.OpenRead(path);
        int n = f.Read(head);
        // torch.save writes a zip ("PK\x03\x04") since PyTorch 1.6, a pickle (0x80 protocol byte) before.
        if (n >= 2 && ((head[0] == (byte)'P' && head[1] == (byte)'K') || head[0] == 0x80)) return WeightsFormat.PyTorch;
        return WeightsFormat.TorchSharp;
    }
}
