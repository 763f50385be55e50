namespace Microsoft.ML.Adversarial.IO;

/// <summary>
/// Writes a file under a temporary name in the same folder and renames it into place, so an interrupted write
/// never leaves a partial file under the final name (a rerun simply replaces the temporary file).
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes <paramref name="path"/> through a temporary file renamed into place; creates the folder if needed.</summary>
    /// <param name="path">The final file.</param>
    /// <param name="write">Writes the content to the stream it is given.</param>
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

    /// <summary>Writes <paramref name="text"/> (UTF-8) to <paramref name="path"/> atomically.</summary>
    /// <param name="path">The final file.</param>
    /// <param name="text">The content.</param>
    public static void WriteAllText(string path, string text) =>
        Write(path, s => { using var w = new StreamWriter(s); w.Write(text); });

    /// <summary>Bytes <see cref="EnsureWritableFolder(string)"/> writes: room for a report or a small file.</summary>
    public const long DefaultProbeBytes = 64 * 1024;

    /// <summary>Creates <paramref name="folder"/> and writes and deletes a probe file there, so a long run fails before it starts, not at its first save.</summary>
    public static void EnsureWritableFolder(string folder) => EnsureWritableFolder(folder, DefaultProbeBytes);

    /// <summary>
    /// Creates <paramref name="folder"/>, writes <paramref name="bytes"/> bytes to a probe file there and deletes it:
    /// a full disk fails here, before a long run, and not at its end (an empty probe fits even on a full disk).
    /// </summary>
    /// <exception cref="IOException">The folder cannot hold <paramref name="bytes"/> more bytes; the message names it.</exception>
    public static void EnsureWritableFolder(string folder, long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Directory.CreateDirectory(folder);
        string probe = Path.Combine(folder, $".write-test-{Environment.ProcessId}");
        try
        {
            using var file = new FileStream(probe, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 1);
            // Real bytes, not SetLength: a sparse file takes no space, so it would pass on a full disk.
            var block = new byte[(int)Math.Min(Math.Max(bytes, 1), 1 << 20)];
            for (long done = 0; done < bytes; done += block.Length)
                file.Write(block, 0, (int)Math.Min(block.Length, bytes - done));
            file.Flush(flushToDisk: true);
        }
        catch (IOException e)
        {
            throw new IOException($"Cannot write {bytes:N0} bytes to '{folder}' ({e.Message.Split('\n')[0].TrimEnd()}); the disk is full or the folder is not writable. Free some space or choose another folder.", e);
        }
        finally
        {
            File.Delete(probe);
        }
    }
}
