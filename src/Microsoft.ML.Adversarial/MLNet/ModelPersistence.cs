using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// What our transformers write into an ML.NET model zip besides ML.NET's own header: a JSON settings entry and, for
/// classifiers, the network as a <see cref="ModelIO"/> file. Both are separate entries so that a reader can check
/// the version before touching the weights.
/// </summary>
internal static class ModelPersistence
{
    /// <summary>True for a zip that ML.NET's <c>Model.Save</c> wrote (it holds a TransformerChain or DataLoaderModel folder).</summary>
    public static bool IsMLNetModelZip(string path)
    {
        try
        {
            using var zip = System.IO.Compression.ZipFile.OpenRead(path);
            return zip.Entries.Any(e => e.FullName.StartsWith("TransformerChain/", StringComparison.Ordinal) || e.FullName.StartsWith("DataLoaderModel/", StringComparison.Ordinal));
        }
        catch (InvalidDataException)
        {
            return false;
        }
    }

    public const string StateEntry = "State.json";
    public const string NetworkEntry = "Network.zip";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    /// <summary>Suffix of the entry holding another entry's SHA-256 (upper-case hex).</summary>
    private const string HashSuffix = ".sha256";

    public static void SaveJson<T>(ModelSaveContext ctx, T state) =>
        SaveEntry(ctx, StateEntry, Encoding.UTF8.GetBytes(JsonSerializer.Serialize(state, Json)));

    /// <summary>
    /// Writes an entry and, beside it, its SHA-256: ML.NET's zip reader checks no CRC, so damaged settings would
    /// otherwise load as other settings.
    /// </summary>
    public static void SaveEntry(ModelSaveContext ctx, string name, byte[] bytes)
    {
        ctx.SaveBinaryStream(name, w => w.Write(bytes));
        ctx.SaveBinaryStream(name + HashSuffix, w => w.Write(Encoding.ASCII.GetBytes(Convert.ToHexString(SHA256.HashData(bytes)))));
    }

    /// <summary>Reads an entry (null if absent) and checks it against its SHA-256; files written before the hashes have none and are accepted.</summary>
    public static byte[]? LoadEntry(ModelLoadContext ctx, string name)
    {
        byte[]? bytes = null, hash = null;
        if (!ctx.TryLoadBinaryStream(name, r => bytes = ReadAll(r.BaseStream)) || bytes is null) return null;
        if (ctx.TryLoadBinaryStream(name + HashSuffix, r => hash = ReadAll(r.BaseStream)) && hash is not null)
        {
            string expected = Encoding.ASCII.GetString(hash).Trim(), actual = Convert.ToHexString(SHA256.HashData(bytes));
            if (!string.Equals(expected, actual, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"The model entry '{ctx.Directory}/{name}' is damaged: its SHA-256 is {actual[..16]}..., the file says " +
                    $"{expected[..Math.Min(16, expected.Length)]}.... Nothing was loaded; use an intact copy of the model file.");
        }
        return bytes;
    }

    /// <summary>True when the network's tensors have been disposed (saving it would write an unloadable file).</summary>
    public static bool IsDisposed(nn.Module<Tensor, Tensor> model)
    {
        // TorchSharp's Dispose empties the module's parameter list or invalidates the tensors, depending on the module.
        try
        {
            var parameters = model.parameters().ToList();
            return parameters.Count == 0 || parameters.Any(p => p.IsInvalid);
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException) { return true; }
    }

    /// <summary>
    /// Best effort when saving must fail: ML.NET has already created the file, so remove it rather than leave a broken
    /// model behind. Works where an open file can be deleted (Linux, macOS); elsewhere the file stays, without our entries.
    /// </summary>
    public static void AbandonFile(ModelSaveContext ctx)
    {
        try
        {
            var archive = ctx.Repository?._archive;
            var stream = typeof(System.IO.Compression.ZipArchive)
                .GetField("_archiveStream", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)?.GetValue(archive);
            if (stream is FileStream { Name: { } path } && File.Exists(path)) File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or System.Reflection.TargetException or ArgumentException)
        {
            // The error about the model is what matters; the half-written file is then left behind.
        }
    }

    public static T LoadJson<T>(ModelLoadContext ctx, Func<T, int> version, int supported, Func<T, string> writtenBy) where T : class
    {
        byte[]? bytes = LoadEntry(ctx, StateEntry);
        if (bytes is null)
            throw new InvalidDataException($"The model entry '{ctx.Directory}' lacks its {StateEntry}: the file is incomplete or was not written by Microsoft.ML.Adversarial.");
        T? state;
        try { state = JsonSerializer.Deserialize<T>(bytes, Json); }
        catch (JsonException e)
        {
            throw new InvalidDataException($"The settings of model entry '{ctx.Directory}' are unreadable ({e.Message}); the file is damaged.", e);
        }
        if (state is null) throw new InvalidDataException($"The settings of model entry '{ctx.Directory}' are empty; the file is damaged.");
        if (version(state) > supported)
            throw new InvalidDataException(
                $"The model entry '{ctx.Directory}' was written by Microsoft.ML.Adversarial {writtenBy(state)} (settings version {version(state)}); " +
                $"this is {ModelIO.LibraryVersion}, which reads version {supported} and older. Update the Microsoft.ML.Adversarial package to load it.");
        return state;
    }

    public static (nn.Module<Tensor, Tensor> Model, ModelDescription Description) LoadNetwork(ModelLoadContext ctx, Device device)
    {
        byte[]? bytes = LoadEntry(ctx, NetworkEntry) ??
            throw new InvalidDataException($"The model entry '{ctx.Directory}' lacks its network ({NetworkEntry}); the file is incomplete.");
        using var stream = new MemoryStream(bytes);
        return ModelIO.Read(stream, $"{ctx.Directory}/{NetworkEntry}", device);
    }

    private static byte[] ReadAll(Stream s)
    {
        var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }
}
