using Microsoft.ML.Adversarial.IO;
using Spectre.Console;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>What the commands write: probes for room before long work, atomic files, folders protected from being overwritten.</summary>
internal static class OutputFiles
{
    /// <summary>
    /// Fails before a long run if <paramref name="bytes"/> bytes cannot be written where the output goes (a folder,
    /// or a file's folder): a real probe of that size, so a full disk is found now and not after the work.
    /// </summary>
    public static void EnsureWritable(string path, bool isFolder, long bytes = AtomicFile.DefaultProbeBytes, string option = "--output")
    {
        string folder = isFolder ? path : Path.GetDirectoryName(Path.GetFullPath(path))!;
        try
        {
            if (!isFolder && Directory.Exists(path)) throw new IOException($"'{path}' is a folder; a file name is expected");
            AtomicFile.EnsureWritableFolder(folder, bytes);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The probe's own failure (a full disk) comes wrapped; say how much was asked for.
            string reason = e.InnerException is IOException inner ? $"{CliException.OneLine(inner.Message).TrimEnd('.')}; {bytes:N0} bytes were probed" : CliException.OneLine(e.Message).TrimEnd('.');
            throw new CliException($"{option} '{path}': cannot write to '{Path.GetFullPath(folder)}' ({reason}). Choose another {option}, or free some space if the disk is full.");
        }
    }

    /// <summary>The highest folder on the way to <paramref name="folder"/> that does not exist yet (null when it exists).</summary>
    public static string? FirstMissingFolder(string folder)
    {
        string? missing = null;
        for (var d = new DirectoryInfo(Path.GetFullPath(folder)); d is not null && !d.Exists && !File.Exists(d.FullName); d = d.Parent) missing = d.FullName;
        return missing;
    }

    /// <summary>Removes a folder a failed command created (with what it wrote there), so a failure leaves nothing behind.</summary>
    public static void RemoveCreatedFolder(string? folder)
    {
        if (folder is null || !Directory.Exists(folder)) return;
        try { Directory.Delete(folder, recursive: true); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Console.Error.WriteLine($"advml: could not remove '{folder}' ({e.Message})."); }
    }

    /// <summary>
    /// Remembers what an output folder holds before a run, so that a failed run can remove exactly what it created:
    /// the folders it made on the way to <paramref name="folder"/> when that did not exist, or, when it did, the files
    /// and sub-folders that appeared in it. A folder that existed before the run is never deleted.
    /// </summary>
    public static Action TrackCreated(string folder)
    {
        if (FirstMissingFolder(folder) is { } missing) return () => RemoveCreatedFolder(missing);
        if (!Directory.Exists(folder)) return () => { };
        string root = Path.GetFullPath(folder);
        var before = new HashSet<string>(Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories));
        return () =>
        {
            if (!Directory.Exists(root)) return;
            try
            {
                // Top-most new entries only: a new folder goes with everything in it.
                foreach (var entry in Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Where(e => !before.Contains(e)).OrderBy(e => e.Length).ToList())
                {
                    if (Directory.Exists(entry)) Directory.Delete(entry, recursive: true);
                    else if (File.Exists(entry)) File.Delete(entry);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { Console.Error.WriteLine($"advml: could not remove what the failed run wrote to '{root}' ({e.Message})."); }
        };
    }

    /// <summary>The full path with symbolic links resolved, so two spellings of one folder compare equal.</summary>
    public static string RealPath(string path)
    {
        string full = Path.GetFullPath(path);
        string current = Path.GetPathRoot(full)!;
        foreach (var part in full[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            current = Path.Combine(current, part);
            var info = new DirectoryInfo(current);
            if (info.LinkTarget is not null && info.ResolveLinkTarget(returnFinalTarget: true) is { } target) current = Path.GetFullPath(target.FullName);
        }
        return Path.TrimEndingDirectorySeparator(current);
    }

    /// <summary>Whether <paramref name="inner"/> is <paramref name="outer"/> or lies inside it (both real paths).</summary>
    public static bool IsSameOrInside(string inner, string outer)
    {
        var comparison = OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;
        string prefix = Path.EndsInDirectorySeparator(outer) ? outer : outer + Path.DirectorySeparatorChar;
        return string.Equals(inner, outer, comparison) || inner.StartsWith(prefix, comparison);
    }

    /// <summary>Writes a report as JSON or CSV by the file's extension (atomically).</summary>
    public static void WriteResults(string path, string json, string csv)
    {
        string text = CommonOptions.ReportFormat(path) switch
        {
            "json" => json,
            "csv" => csv,
            _ => throw new CliException($"--output '{path}': use a .json or .csv file name."),
        };
        WriteAtomically(path, text);
        AnsiConsole.MarkupLine($"[grey]Wrote {Markup.Escape(path)}[/]");
    }

    public static void WriteAtomically(string path, string text) => AtomicFile.WriteAllText(path, text);
}
