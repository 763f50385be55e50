namespace Microsoft.ML.Adversarial.IO;

/// <summary>
/// Writes a file under a temporary name in the same folder and renames it into place, so an interrupted write
/// never leaves a partial file under the final name (a rerun simply replaces the temporary file).
/// </summary>
public static class AtomicFile
{
    public static void Write(string path, Action<Stream> write)
    {
        ArgumentNullException.ThrowIfNull(write);
        var full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.tmp-{Environment.ProcessId}");
        try
        {
            using (var file = File.Create(tmp)) write(file);
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
    }

    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s); w.Write(text); });

    /// <summary>Creates <paramref name="folder"/> and writes and deletes a probe file there, so a long run fails before it starts, not at its first save.</summary>
    public static void EnsureWritableFolder(string folder)
    {
        Directory.CreateDirectory(folder);
        string probe = Path.Combine(folder, $".write-test-{Environment.ProcessId}");
        File.WriteAllText(probe, "");
        File.Delete(probe);
    }
}
