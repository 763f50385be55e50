using System.Security.Cryptography;
using System.Text.Json;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Training;

/// <summary>
/// A training checkpoint: model weights, optimiser state and step counter, with the architecture's fingerprint and
/// each file's SHA-256. Written into a temporary folder that replaces the previous checkpoint by renaming, so a run
/// killed at any moment leaves the last complete checkpoint; a corrupt or mismatched one is refused before anything
/// is loaded.
/// </summary>
internal static class Checkpoint
{
    private const string Current = "checkpoint";
    private const string Previous = "checkpoint.previous";
    private const int FormatVersion = 1;

    private sealed record State(int Format, long Step, string Fingerprint, string ModelSha256, string OptimizerSha256);

    public static bool Exists(string directory)
        => File.Exists(Path.Combine(directory, Current, "state.json")) || File.Exists(Path.Combine(directory, Previous, "state.json"));

    public static void Save(string directory, Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer, long step, string fingerprint)
    {
        Directory.CreateDirectory(directory);
        string tmp = Path.Combine(directory, $".checkpoint.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        string modelPath = Path.Combine(tmp, "model.dat"), optimizerPath = Path.Combine(tmp, "optimizer.dat");
        model.save(modelPath);
        optimizer.save_state_dict(optimizerPath);
        var state = new State(FormatVersion, step, fingerprint, Sha256(modelPath), Sha256(optimizerPath));
        File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(state));

        string current = Path.Combine(directory, Current), previous = Path.Combine(directory, Previous);
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
        if (Directory.Exists(current)) Directory.Move(current, previous);
        Directory.Move(tmp, current);
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
    }

    /// <summary>Loads the newest complete checkpoint into the model and optimiser; returns its step.</summary>
    public static long Load(string directory, Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer, string fingerprint)
    {
        string folder = Path.Combine(directory, Current);
        if (!File.Exists(Path.Combine(folder, "state.json"))) folder = Path.Combine(directory, Previous);
        string statePath = Path.Combine(folder, "state.json");
        State state;
        try
        {
            state = JsonSerializer.Deserialize<State>(File.ReadAllText(statePath)) ?? throw new InvalidDataException("empty state");
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException)
        {
            throw new InvalidDataException($"Checkpoint '{statePath}' is corrupt ({ex.Message}). Delete the folder '{directory}' to start over.", ex);
        }
        if (state.Format != FormatVersion)
            throw new InvalidDataException($"Checkpoint '{folder}' has format {state.Format}; this version reads format {FormatVersion}. Start a new run or use the library version that wrote it.");
        if (state.Fingerprint != fingerprint)
            throw new InvalidDataException(
                $"Checkpoint '{folder}' was written for another architecture or optimiser.\n  checkpoint: {Shorten(state.Fingerprint)}\n  this run:   {Shorten(fingerprint)}\n" +
                "Resume with the same model options, or point the run at a new checkpoint folder.");
        string modelPath = Path.Combine(folder, "model.dat"), optimizerPath = Path.Combine(folder, "optimizer.dat");
        foreach (var (path, expected) in new[] { (modelPath, state.ModelSha256), (optimizerPath, state.OptimizerSha256) })
            if (!File.Exists(path) || Sha256(path) != expected)
                throw new InvalidDataException($"Checkpoint file '{path}' is missing or corrupt (checksum mismatch). Nothing was loaded; delete '{directory}' to start over.");
        model.load(modelPath);
        optimizer.load_state_dict(optimizerPath);
        return state.Step;
    }

    private static string Sha256(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(stream));
    }

    private static string Shorten(string s) => s.Length <= 300 ? s : s[..300] + "...";
}
