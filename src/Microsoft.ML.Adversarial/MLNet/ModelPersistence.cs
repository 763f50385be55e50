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
    public const string StateEntry = "State.json";
    public const string NetworkEntry = "Network.zip";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true, Converters = { new JsonStringEnumConverter() } };

    public static void SaveJson<T>(ModelSaveContext ctx, T state) =>
        ctx.SaveBinaryStream(StateEntry, w => w.Write(Encoding.UTF8.GetBytes(JsonSerializer.Serialize(state, Json))));

    public static T LoadJson<T>(ModelLoadContext ctx, Func<T, int> version, int supported, Func<T, string> writtenBy) where T : class
    {
        byte[]? bytes = null;
        if (!ctx.TryLoadBinaryStream(StateEntry, r => bytes = ReadAll(r.BaseStream)) || bytes is null)
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
        byte[]? bytes = null;
        if (!ctx.TryLoadBinaryStream(NetworkEntry, r => bytes = ReadAll(r.BaseStream)) || bytes is null)
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
