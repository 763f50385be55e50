namespace Microsoft.ML.Adversarial.IO;

/// <summary>
/// Exclusive use of a folder by one run (training into a checkpoint folder, an attack into its output folder): a lock
/// file opened with <see cref="FileShare.None"/>, held until disposed. The operating system releases it when the process
/// dies, so a crashed run never blocks the next one. Who holds it (PID, host, start time) is written beside it for the
/// error message. The lock file stays (deleting it would let a waiting run lock a file that is about to go).
/// </summary>
public sealed class FolderLock : IDisposable
{
    private readonly FileStream _lock;
    private readonly string _owner;

    private FolderLock(FileStream lockStream, string owner)
    {
        _lock = lockStream;
        _owner = owner;
    }

    /// <summary>
    /// Takes the lock <paramref name="lockFileName"/> in <paramref name="directory"/> (created if missing); when another
    /// process holds it, throws an <see cref="IOException"/> whose message is <paramref name="inUse"/> given the holder
    /// ("PID 123 on host h, started ... UTC").
    /// </summary>
    /// <param name="directory">The folder to lock.</param>
    /// <param name="lockFileName">The lock file's name in the folder (its holder goes to the same name + ".owner").</param>
    /// <param name="inUse">The error message for a folder in use, from the holder's description.</param>
    public static FolderLock Acquire(string directory, string lockFileName, Func<string, string> inUse)
    {
        ArgumentNullException.ThrowIfNull(inUse);
        Directory.CreateDirectory(directory);
        string lockPath = Path.Combine(directory, lockFileName), ownerPath = lockPath + ".owner";
        FileStream stream;
        try
        {
            stream = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            string holder;
            try { holder = File.ReadAllText(ownerPath).Trim(); }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException) { holder = "another process"; }
            throw new IOException(inUse(holder), e);
        }
        string owner = string.Create(System.Globalization.CultureInfo.InvariantCulture,
            $"PID {Environment.ProcessId} on host {Environment.MachineName}, started {DateTime.UtcNow:yyyy-MM-dd HH:mm:ss} UTC");
        try
        {
            File.WriteAllText(ownerPath, owner);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
        return new FolderLock(stream, ownerPath);
    }

    /// <summary>Releases the lock.</summary>
    public void Dispose()
    {
        try { File.Delete(_owner); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // only the message's detail
        _lock.Dispose();
    }
}
