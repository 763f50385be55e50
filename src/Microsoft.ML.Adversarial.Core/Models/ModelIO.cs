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

    /// <summary>Most classes a description may declare (ImageNet-21k has 21,841).</summary>
    public const int MaxClasses = 100_000;
    /// <summary>Most input channels a description may declare.</summary>
    public const int MaxChannels = 64;
    /// <summary>Largest image side a description may declare.</summary>
    public const int MaxSide = 4096;
    /// <summary>Most parameters a description may need (4 GB of float32 weights).</summary>
    public const long MaxParameters = 1_000_000_000;

    /// <summary>Builds the (untrained) network this description describes (after <see cref="Validate"/>).</summary>
    public Module<Tensor, Tensor> CreateModel()
    {
        Validate();
        return Spec.Create(Classes, (Channels, Height, Width));
    }

    /// <summary>
    /// Checks every number before anything is allocated: a damaged or hostile description must give an error, not a
    /// native crash or an attempt to allocate hundreds of gigabytes. The message names the field and its value.
    /// </summary>
    public void Validate()
    {
        if (Spec is null) throw new ArgumentNullException(nameof(Spec), "The description has no Spec (architecture, rho, activation).");
        if (!Enum.IsDefined(Spec.Architecture))
            throw new ArgumentOutOfRangeException(nameof(Spec.Architecture), Spec.Architecture, $"Unknown architecture {Spec.Architecture}.");
        if (Spec.Architecture == ModelArchitecture.Custom)
            throw new ArgumentException(ModelSpec.CustomCannotBeRebuilt, nameof(Spec));
        Spec.Validate();
        if (Classes < 2 || Classes > MaxClasses)
            throw new ArgumentOutOfRangeException(nameof(Classes), Classes, $"A classifier needs 2 to {MaxClasses} classes; the description says {Classes}.");
        if (ClassNames is not null && (ClassNames.Count != Classes || ClassNames.Any(n => n is null)))
            throw new ArgumentException($"ClassNames has {ClassNames.Count} names (or a null one) for {Classes} classes.", nameof(ClassNames));
        if (Channels < 1 || Channels > MaxChannels)
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, $"Channels must lie in 1..{MaxChannels}; the description says {Channels}.");
        if (TorchVisionModels.IsTorchVision(Spec.Architecture) && Channels != 3)
            throw new ArgumentOutOfRangeException(nameof(Channels), Channels, $"{Spec.Architecture} takes 3-channel images; the description says {Channels}.");
        int minSide = Spec.Architecture == ModelArchitecture.SmallCnn ? 4 : TorchVisionModels.MinSide(Spec.Architecture);
        foreach (var (name, side) in new[] { (nameof(Height), Height), (nameof(Width), Width) })
            if (side < minSide || side > MaxSide)
                throw new ArgumentOutOfRangeException(name, side, $"{Spec.Architecture} takes images of {minSide} to {MaxSide} pixels a side; the description says {name} {side}.");
        if (Height != Width)
            throw new ArgumentException($"{Spec.Architecture} needs square images; the description says {Height}x{Width}.", nameof(Width));
        long parameters = EstimateParameterCount();
        if (parameters > MaxParameters)
            throw new ArgumentOutOfRangeException(nameof(Spec), $"{Spec} for {Channels}x{Height}x{Width} images and {Classes} classes needs about " +
                $"{parameters:N0} parameters ({parameters * 4.0 / (1L << 30):F0} GiB), more than the {MaxParameters:N0} allowed. Use a smaller rho or smaller images.");
    }

    /// <summary>
    /// About how many parameters and buffers the network has (exact for SmallCnn, an upper estimate for the others),
    /// computed from the numbers alone so that it is safe on any description.
    /// </summary>
    public long EstimateParameterCount()
    {
        double rho = Spec.Rho;
        double S(int width) => Math.Max(1, Math.Round(width * rho));
        double c = Channels, k = Classes, side = Math.Floor(Height / 4.0);
        double n = Spec.Architecture switch
        {
            ModelArchitecture.SmallCnn => (c * 9 + 1) * S(32) + (S(32) * 9 + 1) * S(64) + (S(64) * side * side + 1) * S(128) + (S(128) + 1) * k,
            ModelArchitecture.SmallResNet => ResNet(S(16), S(32), S(64)),
            _ when TorchVisionModels.IsTorchVision(Spec.Architecture) => TorchVisionModels.ParameterCount(Spec.Architecture, Classes),
            // torchvision's Inception v3 has 21.8M parameters without its classifiers; the deeper variant adds two 768-channel blocks.
            _ => (22e6 * (Spec.Deeper ? 1.25 : 1) + (Spec.AuxLogits ? 3.2e6 : 0)) * Math.Max(rho, 0.1) * Math.Max(rho, 0.1) * 1.2
                 + c * 9 * S(32) + (S(2048) + 1) * k + (Spec.AuxLogits ? (S(768) + 1) * k : 0),
        };
        return n >= long.MaxValue ? long.MaxValue : (long)Math.Ceiling(n);

        double ResNet(double w1, double w2, double w3)
        {
            double blocks = Math.Min(Spec.BlocksPerStage, 1_000_000);
            double Block(double i, double o) => i * 9 * o + o * 9 * o + 10 * o + (i != o ? i * o + 5 * o : 0);
            return c * 9 * w1 + 5 * w1 + Block(w1, w1) + Block(w1, w2) + Block(w2, w3)
                   + (blocks - 1) * (Block(w1, w1) + Block(w2, w2) + Block(w3, w3)) + (w3 + 1) * k;
        }
    }
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

    // WeightsSha256 (upper-case hex of weights.bin) was added within format 1: older readers ignore it, and files
    // without it (written before) are accepted after the zip CRC-32 check alone.
    private sealed record FileHeader(string Format, int FormatVersion, string LibraryVersion, ModelDescription Description, string? WeightsSha256 = null);

    /// <summary>Largest model.json accepted (class names included).</summary>
    private const long MaxDescriptionBytes = 16 << 20;

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
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(description);
        if (description.Spec?.Architecture == ModelArchitecture.Custom) throw new NotSupportedException(ModelSpec.CustomCannotBeRebuilt);
        description.Validate();
        // A disposed network would be written as a short, unloadable file: refuse before writing anything.
        var parameters = model.parameters().ToList();
        if (parameters.Count == 0 || parameters.Any(p => p.IsInvalid))
            throw new ObjectDisposedException(model.GetType().Name, $"The {description.Spec} network has been disposed; it cannot be saved.");
        var weights = new MemoryStream();
        using (var w = new BinaryWriter(weights, System.Text.Encoding.UTF8, leaveOpen: true))
            model.save(w);
        weights.Position = 0;
        var header = new FileHeader(FormatName, FormatVersion, LibraryVersion, description, Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(weights)));
        using var zip = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        using (var s = zip.CreateEntry(DescriptionEntry).Open())
            JsonSerializer.Serialize(s, header, Json);
        using (var s = zip.CreateEntry(WeightsEntry, CompressionLevel.Fastest).Open())
            weights.WriteTo(s);
    }

    /// <summary>Reads a model file written by <see cref="Save"/>: rebuilds the network and loads its weights (eval mode).</summary>
    public static (Module<Tensor, Tensor> Model, ModelDescription Description) Load(string path, Device? device = null)
    {
        if (Directory.Exists(path))
            throw new FileNotFoundException($"'{path}' is a directory; a model file (.advml, written by ModelIO.Save or advml train) is expected.", path);
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
            // A zip may hold two entries of one name and GetEntry returns one of them: which model is it? Refused.
            if (zip.Entries.GroupBy(e => e.FullName, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1) is { } repeated)
                throw new InvalidDataException($"'{name}' holds {repeated.Count()} entries named '{repeated.Key}'; a model file has one of each. " +
                    "The file was altered or assembled by hand: use the file ModelIO.Save or advml train wrote.");
            var headerEntry = zip.GetEntry(DescriptionEntry);
            var weightsEntry = zip.GetEntry(WeightsEntry);
            if (headerEntry is null || weightsEntry is null)
                throw new InvalidDataException(zip.Entries.Any(e => e.FullName.StartsWith("TransformerChain/", StringComparison.Ordinal))
                    ? $"'{name}' is an ML.NET model zip (written by mlContext.Model.Save), not an advml model file; load it with mlContext.Model.Load, or pass the .advml file."
                    : $"'{name}' is a zip file but not a Microsoft.ML.Adversarial model file (it lacks {DescriptionEntry} or {WeightsEntry}).");
            FileHeader? header;
            try
            {
                using var s = new MemoryStream(ReadEntry(headerEntry, MaxDescriptionBytes, name, "the description"));
                header = JsonSerializer.Deserialize<FileHeader>(s, Json);
            }
            catch (Exception e) when (e is JsonException or NotSupportedException)
            {
                throw new InvalidDataException($"'{name}': the model description ({DescriptionEntry}) is unreadable or truncated ({e.Message}).", e);
            }
            if (header is null || header.Format != FormatName)
                throw new InvalidDataException($"'{name}' is not a Microsoft.ML.Adversarial model file (format '{header?.Format}').");
            if (header.FormatVersion > FormatVersion)
                throw new InvalidDataException(
                    $"'{name}' was written by Microsoft.ML.Adversarial {header.LibraryVersion} in model format {header.FormatVersion}; " +
                    $"this is {LibraryVersion}, which reads format {FormatVersion} and older. Update the package to load it.");
            var description = header.Description ??
                throw new InvalidDataException($"'{name}': {DescriptionEntry} has no Description (architecture, classes, image shape); the file is damaged.");
            long parameters;
            try
            {
                description.Validate();
                parameters = description.EstimateParameterCount();
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"'{name}': the model description in {DescriptionEntry} is invalid: {FirstLine(e.Message)} " +
                    "The file is damaged or was not written by Microsoft.ML.Adversarial.", e);
            }
            // TorchSharp's format: the float32 data plus a name, type and shape per tensor; anything far beyond is not these weights.
            long maxWeights = parameters * 8 + (1 << 20);
            byte[] weights = ReadEntry(weightsEntry, maxWeights, name, $"the weights of {description.Spec}");
            if (header.WeightsSha256 is { } expected)
            {
                string actual = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(weights));
                if (!string.Equals(actual, expected, StringComparison.OrdinalIgnoreCase))
                    throw new InvalidDataException($"'{name}': {WeightsEntry} is damaged: its SHA-256 is {actual[..16]}..., the description says {expected[..Math.Min(16, expected.Length)]}.... " +
                        "Nothing was loaded; use an intact copy of the file.");
            }
            var model = description.CreateModel();
            try
            {
                using var r = new BinaryReader(new MemoryStream(weights));
                model.load(r, strict: true);
            }
            catch (Exception e) when (e is InvalidDataException or EndOfStreamException or ArgumentException or InvalidOperationException or IOException)
            {
                model.Dispose();
                throw new InvalidDataException($"'{name}': the weights do not match {description.Spec} or are truncated ({e.Message}).", e);
            }
            if (device is not null) model.to(device);
            model.eval();
            return (model, description);
        }
    }

    /// <summary>
    /// Reads one zip entry whole, refusing it by its declared size first (a decompression bomb is refused before any
    /// inflating), then stopping as soon as it inflates past that size, then checking its CRC-32, which .NET's
    /// ZipArchive does not: flipped bytes in a stored entry would otherwise load as a different model.
    /// </summary>
    private static byte[] ReadEntry(ZipArchiveEntry entry, long maxBytes, string name, string what)
    {
        if (entry.Length > maxBytes)
            throw new InvalidDataException($"'{name}': {entry.FullName} declares {entry.Length:N0} bytes, more than {what} can need ({maxBytes:N0}); " +
                "the file is damaged or not a model file. Nothing was loaded.");
        var bytes = new byte[entry.Length];
        using (var s = entry.Open())
        {
            int read = 0, n;
            while (read < bytes.Length && (n = s.Read(bytes, read, bytes.Length - read)) > 0) read += n;
            if (read < bytes.Length)
                throw new InvalidDataException($"'{name}': {entry.FullName} is truncated or damaged ({read:N0} of {entry.Length:N0} bytes). Nothing was loaded.");
            Span<byte> probe = stackalloc byte[1];
            if (s.Read(probe) > 0)
                throw new InvalidDataException($"'{name}': {entry.FullName} is damaged: it inflates to more than the {entry.Length:N0} bytes it declares. Nothing was loaded.");
        }
        uint crc = ZipCrc32.Compute(bytes);
        if (crc != entry.Crc32)
            throw new InvalidDataException($"'{name}': {entry.FullName} is damaged (CRC-32 {crc:X8}, the zip says {entry.Crc32:X8}). Nothing was loaded; use an intact copy of the file.");
        return bytes;
    }

    private static string FirstLine(string message)
    {
        string first = message.Split('\n', 2)[0].TrimEnd();
        int p = first.LastIndexOf(" (Parameter '", StringComparison.Ordinal);
        return p > 0 ? first[..p] : first;
    }

    /// <summary>The zip format's CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320), slicing by 8 bytes.</summary>
    private static class ZipCrc32
    {
        private static readonly uint[] Table = Build();

        private static uint[] Build()
        {
            var t = new uint[8 * 256];
            for (uint i = 0; i < 256; i++)
            {
                uint c = i;
                for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                t[i] = c;
            }
            for (int i = 0; i < 256; i++)
                for (int s = 1; s < 8; s++)
                    t[s * 256 + i] = (t[(s - 1) * 256 + i] >> 8) ^ t[t[(s - 1) * 256 + i] & 0xFF];
            return t;
        }

        public static uint Compute(ReadOnlySpan<byte> data)
        {
            uint crc = 0xFFFFFFFFu;
            var t = Table;
            while (data.Length >= 8)
            {
                uint lo = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(data) ^ crc;
                uint hi = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
                crc = t[7 * 256 + (lo & 0xFF)] ^ t[6 * 256 + ((lo >> 8) & 0xFF)] ^ t[5 * 256 + ((lo >> 16) & 0xFF)] ^ t[4 * 256 + (lo >> 24)]
                    ^ t[3 * 256 + (hi & 0xFF)] ^ t[2 * 256 + ((hi >> 8) & 0xFF)] ^ t[256 + ((hi >> 16) & 0xFF)] ^ t[hi >> 24];
                data = data[8..];
            }
            foreach (byte b in data) crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8);
            return ~crc;
        }
    }

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
            throw new InvalidDataException($"'{path}' could not be read as {kind} weights ({e.Message}). Is the file complete?", e);
        }
        var target = model.state_dict();
        foreach (var key in source.Keys.Where(k => !target.ContainsKey(k) && skippedPrefixes.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList())
            source.Remove(key);
        if (Differences(target, source, "in the file", "in the model") is { } differences)
            throw new InvalidDataException(
                $"'{path}' does not fit {model.GetType().Name}; nothing was loaded.{differences}" +
                " Build the model with the architecture, width (rho) and class count the weights were trained with.");
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

    internal static string LibraryVersion { get; } =
        typeof(ModelIO).Assembly.GetName().Version?.ToString() ?? "unknown";
}
