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
public static class Checkpoint
{
    private const string Current = "checkpoint";
    private const string Previous = "checkpoint.previous";
    private const int FormatVersion = 1;

    /// <summary>
    /// The file of every replica's buffers in a distributed checkpoint with BatchNorm statistics kept per replica
    /// (absent otherwise, and in checkpoints written before it existed).
    /// </summary>
    internal const string ReplicaBuffersFile = "replica-buffers.dat";

    // Settings (added within format 1; absent in older checkpoints, which are then checked by fingerprint only): every
    // option that changes what a step does, and the data's fingerprint, so that a resume with other settings is refused.
    // ReplicaBuffersSha256 (also within format 1): the checksum of ReplicaBuffersFile, null when the checkpoint has none.
    private sealed record State(int Format, long Step, string Fingerprint, string ModelSha256, string OptimizerSha256,
        IReadOnlyDictionary<string, string>? Settings = null, string? ReplicaBuffersSha256 = null);

    /// <summary>True when <paramref name="directory"/> holds a complete checkpoint.</summary>
    public static bool Exists(string directory)
        => File.Exists(Path.Combine(directory, Current, "state.json")) || File.Exists(Path.Combine(directory, Previous, "state.json"));

    /// <summary>The step of the checkpoint in <paramref name="directory"/>; null when there is none, -1 when its state is unreadable.</summary>
    public static long? SavedStep(string directory)
    {
        foreach (var folder in new[] { Current, Previous })
        {
            string state = Path.Combine(directory, folder, "state.json");
            if (!File.Exists(state)) continue;
            try { return JsonSerializer.Deserialize<State>(File.ReadAllText(state))?.Step ?? -1; }
            catch (Exception e) when (e is JsonException or IOException) { return -1; }
        }
        return null;
    }

    /// <summary>Deletes the checkpoint in <paramref name="directory"/> (a run that starts over), leaving other files alone.</summary>
    public static void Delete(string directory)
    {
        foreach (var folder in new[] { Current, Previous }.Select(f => Path.Combine(directory, f)).Where(Directory.Exists))
            Directory.Delete(folder, recursive: true);
    }

    internal static void Save(string directory, Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer, long step, string fingerprint,
        IReadOnlyDictionary<string, string>? settings = null, Action<Stream>? writeReplicaBuffers = null)
    {
        Directory.CreateDirectory(directory);
        string tmp = Path.Combine(directory, $".checkpoint.tmp-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(tmp);
            string modelPath = Path.Combine(tmp, "model.dat"), optimizerPath = Path.Combine(tmp, "optimizer.dat");
            model.save(modelPath);
            optimizer.save_state_dict(optimizerPath);
            string? replicaBuffersSha256 = null;
            if (writeReplicaBuffers is not null)
            {
                string replicaPath = Path.Combine(tmp, ReplicaBuffersFile);
                using (var file = File.Create(replicaPath)) writeReplicaBuffers(file);
                replicaBuffersSha256 = Sha256(replicaPath);
            }
            var state = new State(FormatVersion, step, fingerprint, Sha256(modelPath), Sha256(optimizerPath), settings, replicaBuffersSha256);
            File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(state));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A full disk or a folder made read-only mid-run: the half-written checkpoint goes, the last one stays.
            try { if (Directory.Exists(tmp)) Directory.Delete(tmp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            string kept = SavedStep(directory) is { } saved ? $"The checkpoint of step {saved} there is intact" : "No earlier checkpoint is there";
            throw new IOException($"Could not write the checkpoint of step {step} to '{directory}': {e.Message.Split('\n')[0].TrimEnd()} " +
                $"(a full disk or a folder that is not writable). {kept}. Free some space (or make the folder writable) and resume (advml train --resume; in code, the checkpoint options' Resume), " +
                "or point the checkpoints at another folder.", e);
        }

        string current = Path.Combine(directory, Current), previous = Path.Combine(directory, Previous);
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
        if (Directory.Exists(current)) Directory.Move(current, previous);
        Directory.Move(tmp, current);
        if (Directory.Exists(previous)) Directory.Delete(previous, recursive: true);
    }

    /// <summary>Loads the newest complete checkpoint into the model and optimiser; returns its step.</summary>
    internal static long Load(string directory, Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer, string fingerprint,
        IReadOnlyDictionary<string, string>? settings = null)
        => Load(directory, model, optimizer, fingerprint, settings, out _);

    /// <summary>
    /// Loads the newest complete checkpoint into the model and optimiser; returns its step, and in
    /// <paramref name="replicaBuffers"/> the contents of its <see cref="ReplicaBuffersFile"/> (checked like the other
    /// files before anything is loaded; null when the checkpoint has none) with the file's path.
    /// <paramref name="absentMeans"/> gives, for settings recorded later than others, the value a checkpoint that does
    /// not record one was written with (so that it still resumes, and a run with another value is refused naming both).
    /// </summary>
    internal static long Load(string directory, Module<Tensor, Tensor> model, TorchSharp.Modules.OptimizerHelper optimizer, string fingerprint,
        IReadOnlyDictionary<string, string>? settings, out (byte[] Bytes, string Path)? replicaBuffers, IReadOnlyDictionary<string, string>? absentMeans = null)
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
        if (state.Settings is { } recorded && settings is not null)
        {
            var saved = new Dictionary<string, string>(recorded);
            foreach (var (key, value) in absentMeans ?? new Dictionary<string, string>())
                saved.TryAdd(key, value);
            var differences = saved.Keys.Union(settings.Keys).Order(StringComparer.Ordinal)
                .Where(k => saved.GetValueOrDefault(k) != settings.GetValueOrDefault(k))
                .Select(k => $"{k}: {saved.GetValueOrDefault(k) ?? "(none)"} vs {settings.GetValueOrDefault(k) ?? "(none)"}").ToList();
            if (differences.Count > 0)
                throw new InvalidDataException(
                    $"Checkpoint '{folder}' was written with other settings (checkpoint vs this run): {string.Join("; ", differences)}. " +
                    "Resuming would mix two runs into one model; resume with the checkpoint's settings, or point the run at a new checkpoint folder.");
        }
        string modelPath = Path.Combine(folder, "model.dat"), optimizerPath = Path.Combine(folder, "optimizer.dat");
        foreach (var (path, expected) in new[] { (modelPath, state.ModelSha256), (optimizerPath, state.OptimizerSha256) })
            if (!File.Exists(path) || Sha256(path) != expected)
                throw new InvalidDataException($"Checkpoint file '{path}' is missing or corrupt (checksum mismatch). Nothing was loaded; delete '{directory}' to start over.");
        replicaBuffers = null;
        if (state.ReplicaBuffersSha256 is { } replicaSha256)
        {
            // Read once, then checked: the bytes handed on are the bytes whose checksum matched.
            string replicaPath = Path.Combine(folder, ReplicaBuffersFile);
            byte[]? bytes = File.Exists(replicaPath) ? File.ReadAllBytes(replicaPath) : null;
            if (bytes is null || Convert.ToHexString(SHA256.HashData(bytes)) != replicaSha256)
                throw new InvalidDataException($"Checkpoint file '{replicaPath}' is missing or corrupt (checksum mismatch). Nothing was loaded; delete '{directory}' to start over.");
            replicaBuffers = (bytes, replicaPath);
        }
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

/// <summary>Exclusive use of a checkpoint folder for one training run (<see cref="IO.FolderLock"/>).</summary>
internal static class CheckpointLock
{
    public static IO.FolderLock Acquire(string directory) => IO.FolderLock.Acquire(directory, "checkpoint.lock", holder =>
        $"Checkpoint folder '{directory}' is in use by another training run ({holder}). Two runs on one folder would overwrite each other's " +
        "checkpoints: wait for that run to finish, stop it, or use another checkpoint folder.");
}
