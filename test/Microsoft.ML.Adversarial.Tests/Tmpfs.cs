using System.Diagnostics;

namespace Microsoft.ML.Adversarial.Tests;

/// <summary>
/// A small RAM file system mounted for one test, to make a real full disk without touching the machine's disks.
/// Needs root (the test machines run tests as root); elsewhere the test is skipped with the reason.
/// </summary>
internal sealed class Tmpfs : IDisposable
{
    public string Root { get; }

    private Tmpfs(string root) => Root = root;

    public static Tmpfs MountOrSkip(long bytes)
    {
        string root = Path.Combine(TestData.TempFolder(), "tmpfs");
        Directory.CreateDirectory(root);
        var (code, err) = Run("mount", "-t", "tmpfs", "-o", $"size={bytes}", "tmpfs", root);
        if (code != 0)
            Assert.Inconclusive($"Skipped: 'mount -t tmpfs' is not permitted here ({err.Trim()}); a full disk cannot be made without it.");
        return new Tmpfs(root);
    }

    public long Available => new DriveInfo(Root).AvailableFreeSpace;

    /// <summary>Fills the file system with a file so that about <paramref name="free"/> bytes stay free.</summary>
    public void FillLeaving(long free)
    {
        long size = Available - free;
        if (size <= 0) return;
        using var f = new FileStream(Path.Combine(Root, $"filler-{Guid.NewGuid():N}"), FileMode.CreateNew);
        var block = new byte[64 * 1024];
        Array.Fill(block, (byte)1);
        for (long done = 0; done < size; done += block.Length) f.Write(block, 0, (int)Math.Min(block.Length, size - done));
    }

    /// <summary>Writes until the file system refuses: nothing more fits.</summary>
    public void Fill()
    {
        try
        {
            using var f = new FileStream(Path.Combine(Root, $"filler-{Guid.NewGuid():N}"), FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 1);
            var block = new byte[4096];
            while (true) f.Write(block);
        }
        catch (IOException)
        {
            // Full.
        }
    }

    public void Dispose()
    {
        Run("umount", "-l", Root);
        try { Directory.Delete(Root, recursive: true); } catch (IOException) { }
    }

    private static (int Code, string Err) Run(string file, params string[] args)
    {
        try
        {
            var psi = new ProcessStartInfo(file) { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var a in args) psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            string err = p.StandardError.ReadToEnd();
            p.WaitForExit();
            return (p.ExitCode, err);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (-1, e.Message);
        }
    }
}
