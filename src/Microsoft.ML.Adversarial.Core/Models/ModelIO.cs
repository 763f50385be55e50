using System.Buffers.Binary;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Serialization;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// Saving and loading networks: a self-describing model file (a zip holding <c>model.json</c> with the architecture
/// and <c>weights.bin</c> in TorchSharp's format, each checked by its CRC-32 and SHA-256 before anything is built),
/// raw TorchSharp weights, and PyTorch state dicts (<c>torch.save(model.state_dict(), path)</c>), whose names must
/// match the module's.
/// </summary>
/// <remarks>
/// One class, one file per job: this file is the model file (the zip format and its checks); <c>ModelIO.Weights.cs</c>
/// loads and checks state dicts; <see cref="ModelDescription"/> (its own file) is what a model file says about its
/// network and the validation of it.
/// </remarks>
public static partial class ModelIO
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
        if (description.Spec is { } spec && Enum.IsDefined(spec.Architecture) && !Architectures.Of(spec.Architecture).Rebuildable)
            throw new NotSupportedException(ModelSpec.CustomCannotBeRebuilt);
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
                    ? $"'{name}' is an ML.NET model zip (written by mlContext.Model.Save), not an advml model file. ML.NET loads it with mlContext.Model.Load; " +
                      "advml and ModelIO.Load read .advml files: write one from the loaded model with var classifier = model.FindImageClassifier(); " +
                      "ModelIO.Save(classifier.Model, classifier.Description, \"m.advml\"), or pass the .advml file it was made from."
                    : $"'{name}' is a zip file but not a Microsoft.ML.Adversarial model file (it lacks {DescriptionEntry} or {WeightsEntry}).");
            FileHeader? header;
            try
            {
                using var s = new MemoryStream(ReadEntry(headerEntry, MaxDescriptionBytes, name, "the description", stream));
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
            byte[] weights = ReadEntry(weightsEntry, maxWeights, name, $"the weights of {description.Spec}", stream);
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
    private static byte[] ReadEntry(ZipArchiveEntry entry, long maxBytes, string name, string what, Stream zip)
    {
        if (entry.Length > maxBytes)
            throw new InvalidDataException($"'{name}': {entry.FullName} declares {entry.Length:N0} bytes, more than {what} can need ({maxBytes:N0}); " +
                "the file is damaged or not a model file. Nothing was loaded.");
        var bytes = new byte[entry.Length];
        Stream opened;
        try { opened = entry.Open(); }
        catch (InvalidDataException e)
        {
            // .NET reads Stored, Deflate and Deflate64 only; a zip tool may have re-packed the file with another method.
            int? method = ZipMethod(zip, entry.FullName);
            if (method is 0 or 8 or 9)
                throw new InvalidDataException($"'{name}': {entry.FullName} is damaged ({e.Message}). Nothing was loaded; use an intact copy of the file.", e);
            throw new InvalidDataException($"'{name}': entry {entry.FullName} is compressed with " +
                (method is { } m ? $"{ZipMethodName(m)} (zip method {m})" : "a method") + $", which .NET cannot read ({e.Message}). " +
                "A zip tool re-packed the file: re-pack it with Deflate or Stored (unzip it, then zip -Z deflate fixed.advml model.json weights.bin; " +
                "or Python's zipfile with ZIP_DEFLATED), or save the model again (advml train, ModelIO.Save). Nothing was loaded.", e);
        }
        using (var s = opened)
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

    /// <summary>
    /// The compression method the zip's central directory gives <paramref name="entryName"/> (0 Stored, 8 Deflate, 12 BZip2,
    /// ...), which .NET's ZipArchive does not expose; null when it cannot be read back from <paramref name="zip"/>.
    /// </summary>
    private static int? ZipMethod(Stream zip, string entryName)
    {
        if (!zip.CanSeek) return null;
        long saved = zip.Position;
        try
        {
            // The end-of-central-directory record (22 bytes and a comment of at most 65535) ends the file.
            var end = new byte[(int)Math.Min(zip.Length, 22 + 65535)];
            zip.Position = zip.Length - end.Length;
            zip.ReadExactly(end);
            int eocd = end.Length - 22;
            while (eocd >= 0 && BinaryPrimitives.ReadUInt32LittleEndian(end.AsSpan(eocd)) != 0x06054b50) eocd--;
            if (eocd < 0) return null;
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(end.AsSpan(eocd + 12));
            uint offset = BinaryPrimitives.ReadUInt32LittleEndian(end.AsSpan(eocd + 16));
            if (offset == uint.MaxValue || size > (16u << 20) || offset + (long)size > zip.Length) return null; // ZIP64 or damaged
            var directory = new byte[size];
            zip.Position = offset;
            zip.ReadExactly(directory);
            for (int p = 0; p + 46 <= directory.Length && BinaryPrimitives.ReadUInt32LittleEndian(directory.AsSpan(p)) == 0x02014b50;)
            {
                var header = directory.AsSpan(p);
                int method = BinaryPrimitives.ReadUInt16LittleEndian(header[10..]);
                int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(header[28..]);
                int rest = BinaryPrimitives.ReadUInt16LittleEndian(header[30..]) + BinaryPrimitives.ReadUInt16LittleEndian(header[32..]);
                if (p + 46 + nameLength > directory.Length) return null;
                if (System.Text.Encoding.UTF8.GetString(directory, p + 46, nameLength) == entryName) return method;
                p += 46 + nameLength + rest;
            }
            return null;
        }
        catch (Exception e) when (e is IOException or ArgumentException or NotSupportedException) { return null; }
        finally { zip.Position = saved; }
    }

    private static string ZipMethodName(int method) => method switch
    {
        1 => "Shrink", 6 => "Implode", 12 => "BZip2", 14 => "LZMA", 93 => "Zstandard", 95 => "XZ", 96 => "JPEG", 97 => "WavPack", 98 => "PPMd",
        99 => "WinZip AES encryption", _ => "an unknown method",
    };

    private static string FirstLine(string message)
    {
        string first = message.Split('\n', 2)[0].TrimEnd();
        int p = first.LastIndexOf(" (Parameter '", StringComparison.Ordinal);
        return p > 0 ? first[..p] : first;
    }

    internal static string LibraryVersion { get; } =
        typeof(ModelIO).Assembly.GetName().Version?.ToString() ?? "unknown";
}
