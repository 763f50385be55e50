using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>
/// Issue 27: a disk that fills (or a folder made read-only) while training wrote a bare OS message and left a
/// <c>.checkpoint.tmp-&lt;guid&gt;</c> folder behind. Now the half-written checkpoint goes, the last complete one stays, and
/// the error names the folder, the step, the one kept and what to do.
/// </summary>
[TestClass]
public sealed class CheckpointWriteFailureTests
{
    [TestMethod]
    public void ACheckpointThatDoesNotFitLeavesNothingHalfWrittenAndNamesWhatIsKept()
    {
        using var fs = Tmpfs.MountOrSkip(2 * 1024 * 1024);
        string dir = Path.Combine(fs.Root, "ck");
        manual_seed(3);
        using var model = new SmallCnn(rho: 0.5);
        var optimizer = optim.Adam(model.parameters(), lr: 1e-3);
        Checkpoint.Save(dir, model, optimizer, 10, "fp");
        fs.FillLeaving(8 * 1024); // room for less than one more checkpoint

        var e = Assert.ThrowsExactly<IOException>(() => Checkpoint.Save(dir, model, optimizer, 20, "fp"));
        StringAssert.Contains(e.Message, dir);
        StringAssert.Contains(e.Message, "step 20");
        StringAssert.Contains(e.Message, "step 10 there is intact");
        StringAssert.Contains(e.Message, "Free some space");
        Assert.AreEqual(0, Directory.GetDirectories(dir, ".checkpoint.tmp-*").Length, "the half-written checkpoint is removed");
        Assert.AreEqual(10L, Checkpoint.SavedStep(dir), "the last complete checkpoint is untouched");
    }
}
