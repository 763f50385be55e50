namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>A user error: printed as one line, exit code 2.</summary>
internal sealed class CliException(string message) : Exception(OneLine(message))
{
    /// <summary>The first line of a message, without .NET's "(Parameter 'x')" suffix.</summary>
    public static string OneLine(string message)
    {
        string first = message.Split('\n', 2)[0].TrimEnd();
        int p = first.LastIndexOf(" (Parameter '", StringComparison.Ordinal);
        return p > 0 ? first[..p] : first;
    }

    /// <summary>
    /// Out of memory, whoever ran out: .NET (<see cref="OutOfMemoryException"/>) or libtorch, whose allocators TorchSharp
    /// surfaces as an <see cref="System.Runtime.InteropServices.ExternalException"/> ("DefaultCPUAllocator: not enough
    /// memory", "can't allocate memory", "CUDA out of memory"). Null for any other error.
    /// </summary>
    public static string? OutOfMemory(Exception e)
    {
        bool native = e is System.Runtime.InteropServices.ExternalException
            && new[] { "not enough memory", "can't allocate memory", "Cannot allocate memory", "out of memory" }.Any(m => e.Message.Contains(m, StringComparison.OrdinalIgnoreCase));
        if (!native && e is not OutOfMemoryException) return null;
        return $"out of memory ({OneLine(e.Message)}). Use a smaller --batch-size (or smaller images, or a smaller --rho), " +
            "or free memory by closing other programs; on a GPU, --device cpu runs in main memory.";
    }
}
