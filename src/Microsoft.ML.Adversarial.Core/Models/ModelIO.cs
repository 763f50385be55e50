using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>What a model file says about its network, so that loading can rebuild it.</summary>
public sealed record ModelDescription(ModelSpec Spec, int Classes, int Channels, int Height, int Width, IReadOnlyList<string>? ClassNames = null)
{
    /// <summary>
    /// The pixel range the network takes (null in files written before it was stored: those models were trained on
    /// [0, 1], see <see cref="InputRangeOrDefault"/>). Attacks use it to convert epsilon and to clip.
    /// </summary>
    public InputRange? InputRange { get; init; }

    /// <summary><see cref="InputRange"/>, or [0, 1] for files that do not say (every model before the field existed was trained on [0, 1]).</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public InputRange InputRangeOrDefault => InputRange ?? Adversarial.InputRange.UnitInterval;

    /// <summary>Builds the (untrained) network this description describes.</summary>
    public Module<Tensor, Tensor> CreateModel() => Spec.Create(Classes, (Channels, Height, Width));
}

/// <summary>
/// Saving and loading networks: a self-describing model file (a zip holding <c>model.json</c> with the architecture
/// and <c>weights.bin</c> in TorchSharp's format), raw TorchSharp weights, and PyTorch state dicts
/// (<c>torch.save(model.state_dict(), path)</c>) or safetensors files, whose names must match the module's.
/// </summary>
public static class ModelIO
{
    /// <summary>Version of the model file layout; files from a newer layout are refused.</summary>
    public const int FormatVersion = 1;
    private const string DescriptionEntry = "model.json";
    private const string WeightsEntry = "weights.bin";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    private sealed record FileHeader(string Format, int FormatVersion, string LibraryVersion, ModelDescription Description);

    private const string FormatName = "Microsoft.ML.Adversarial.Model";

    /// <summary>Writes <paramref name="model"/> with its description to <paramref name="path"/> (temporary file, then rename).</summary>
    public static void Save(Module<Tensor, Tensor> model, ModelDescription description, string path)
    {
        ArgumentNullException.ThrowIfNull(model);
        IO.AtomicFile.Write(path, stream => Write(model, description, stream));
    }

    /// <summary>Writes the model file to a stream (what <c>mlContext.Model.Save</c> embeds).</summary>
    public static void Write(Module<Tensor, Tensor> model, ModelDescription description, Stream stream)
    {
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        var header = new FileHeader(FormatName, FormatVersion, LibraryVersion, description);
        using (var s = zip.CreateEntry(DescriptionEntry).Open())
            JsonSerializer.Serialize(s, header, Json);
        using (var s = zip.CreateEntry(WeightsEntry, CompressionLevel.Fastest).Open())
        using (var w = new BinaryWriter(s))
            model.save(w);
    }

    /// <summary>Reads a model file written by <see cref="Save"/>: rebuilds the network and loads its weights (eval mode).</summary>
    public static (Module<Tensor, Tensor> Model, ModelDescription Description) Load(string path, Device? device = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Model file '{path}' does not exist.", path);
        using var file = File.OpenRead(path);
        return Read(file, path, device);
    }

    /// <summary>Reads a model file from a stream; <paramref name="name"/> names it in errors.</summary>
    public static (Module<Tensor, Tensor> Model, ModelDescription Description) Read(Stream stream, string name, Device? device = null)
    {
        ZipArchive zip;
        try { zip = new ZipArchive(stream, ZipArchiveMode.Read, leaveOpen: true); }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{name}' is not a Microsoft.ML.Adversarial model file, or it is truncated ({e.Message}).", e);
        }
        using (zip)
        {
            var headerEntry = zip.GetEntry(DescriptionEntry);
            var weightsEntry = zip.GetEntry(WeightsEntry);
            if (headerEntry is null || weightsEntry is null)
                throw new InvalidDataException($"'{name}' is a zip file but not a Microsoft.ML.Adversarial model file (it lacks {DescriptionEntry} or {WeightsEntry}).");
            FileHeader? header;
            try
            {
                using var s = headerEntry.Open();
                header = JsonSerializer.Deserialize<FileHeader>(s, Json);
            }
            catch (Exception e) when (e is JsonException or InvalidDataException or NotSupportedException)
            {
                throw new InvalidDataException($"'{name}': the model description is unreadable or truncated ({e.Message}).", e);
            }
            if (header is null || header.Format != FormatName)
                throw new InvalidDataException($"'{name}' is not a Microsoft.ML.Adversarial model file (format '{header?.Format}').");
            if (header.FormatVersion > FormatVersion)
                throw new InvalidDataException(
                    $"'{name}' was written by Microsoft.ML.Adversarial {header.LibraryVersion} in model format {header.FormatVersion}; " +
                    $"this is {LibraryVersion}, which reads format {FormatVersion} and older. Update the package to load it.");
            var model = header.Description.CreateModel();
            try
            {
                // Read fully first: a truncated weights entry must fail before any parameter changes.
                using var s = weightsEntry.Open();
                var bytes = new MemoryStream();
                s.CopyTo(bytes);
                bytes.Position = 0;
                using var r = new BinaryReader(bytes);
                model.load(r, strict: true);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or ArgumentException or InvalidOperationException or IOException)
            {
                model.Dispose();
                throw new InvalidDataException($"'{name}': the weights do not match {header.Description.Spec} or are truncated ({e.Message}).", e);
            }
            if (device is not null) model.to(device);
            model.eval();
            return (model, header.Description);
        }
    }

    /// <summary>
    /// Loads weights into an existing module from a TorchSharp weights file (<c>module.save</c>) or a PyTorch state dict
    /// (<c>torch.save(model.state_dict(), path)</c>, e.g. torchvision's Inception v3 into <see cref="InceptionV3"/>).
    /// Every parameter and buffer must be present with the same name and shape; otherwise nothing is changed and the
    /// error lists the differences.
    /// </summary>
    public static void LoadWeights(Module<Tensor, Tensor> model, string path)
    {
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
            throw new InvalidDataException($"'{path}' could not be read as {kind} weights ({e.Message}). Is the file complete?", e);
        }
        var target = model.state_dict();
        var missing = target.Keys.Where(k => !source.ContainsKey(k)).ToList();
        var unexpected = source.Keys.Where(k => !target.ContainsKey(k)).ToList();
        var wrongShape = target.Where(t => source.TryGetValue(t.Key, out var v) && !v.shape.SequenceEqual(t.Value.shape))
            .Select(t => $"{t.Key} is [{string.Join(", ", source[t.Key].shape)}] in the file, [{string.Join(", ", t.Value.shape)}] in the model").ToList();
        if (missing.Count + unexpected.Count + wrongShape.Count > 0)
        {
            static string List(string what, List<string> items) =>
                items.Count == 0 ? "" : $" {what} ({items.Count}): {string.Join("; ", items.Take(5))}{(items.Count > 5 ? "; ..." : "")}.";
            throw new InvalidDataException(
                $"'{path}' does not fit {model.GetType().Name}; nothing was loaded." + List("Missing from the file", missing) +
                List("Not in the model", unexpected) + List("Different shapes", wrongShape) +
                " Build the model with the architecture, width (rho) and class count the weights were trained with.");
        }
        using var _ = no_grad();
        foreach (var (name, t) in target)
            t.copy_(source[name].to(t.dtype));
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

    internal static string LibraryVersion { get; } =
        typeof(ModelIO).Assembly.GetName().Version?.ToString() ?? "unknown";
}
