using Microsoft.ML.Adversarial.Cli.Common;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>Issue 27: running out of memory was reported as "unexpected ExternalException ... please report this".</summary>
[TestClass]
public sealed class CliOutOfMemoryTests
{
    [TestMethod]
    public void LibtorchRunningOutOfMemoryIsReportedWithWhatToDo()
    {
        // A real allocation libtorch refuses (4 TiB), as a batch too large for the machine ends.
        var e = Assert.Throws<Exception>(() => empty(new long[] { 1L << 40 }, dtype: ScalarType.Float32));
        string? message = CliException.OutOfMemory(e);
        Assert.IsNotNull(message, $"{e.GetType().Name}: {e.Message}");
        StringAssert.StartsWith(message, "out of memory (");
        StringAssert.Contains(message, "--batch-size");
        Assert.IsFalse(message.Contains('\n'), "one line");
        Assert.IsNull(CliException.OutOfMemory(new System.Runtime.InteropServices.ExternalException("shape mismatch")), "other native errors stay unexpected");
        Assert.IsNotNull(CliException.OutOfMemory(new OutOfMemoryException()));
    }
}
