using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Tests.Cli;
using Microsoft.ML.Adversarial.Tests.Data;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Adversarial.Training.Distributed;

namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>
/// Issue 30 item 4 (b, c): what a distributed run leaves behind when a rank's batch cannot be read, and when a rank is
/// killed mid-step. Run as users run it: <c>mpiexec -np 2 advml train ... --distributed</c>, one thread per rank.
/// </summary>
[TestClass]
public sealed class DistributedFailureTests
{
    public TestContext TestContext { get; set; } = null!;

    private static ImageFolderOptions Grey28(string folder) => new() { Folder = folder, Height = 28, Width = 28, Grayscale = true };

    [TestMethod]
    [TestCategory("Slow")]
    public void AFailedReadOnRankOneSavesEveryRanksStatisticsAndResumesExactly()
    {
        string folder = CliImageFolderTests.MakeFolder(trainPerClass: 8, testPerClass: 1), dir = TestData.TempFolder();
        string train = Path.Combine(folder, "train");
        // 80 images over 2 ranks: 40 each, local batches of 8. Rank 1's batch of step 4 (index 3) holds this file.
        string bad = ImageFolderSource.Open(Grey28(train)).FileOf(EpochOrder.For(3, 0, 80, 1, 2)[3 * 8]);
        string[] Train(string checkpoint, string output, params string[] extra) => new[]
        {
            "train", "-o", output, "--arch", "smallresnet", "--rho", "0.25", "--k", "8", "--batch-size", "16", "--seed", "3", "--optimizer", "sgd",
            "--lr", "0.05", "--momentum", "0.9", "--epochs", "2", "--max-steps", "8", "--checkpoint", checkpoint, "--checkpoint-every", "100", "--data", folder,
            "--grayscale", "--image-size", "28", "--distributed",
        }.Concat(extra).ToArray();

        // SmallResNet has BatchNorm: each rank keeps its own running statistics (no --average-bn).
        var whole = MpiJobs.Advml(TestContext, dir, 2, Train("ck-whole", "whole.advml"));
        Assert.AreEqual(0, whole.Code, whole.Err);

        var good = File.ReadAllBytes(bad);
        File.WriteAllBytes(bad, TestImages.CorruptPixelData(28, 28));
        var failed = MpiJobs.Advml(TestContext, dir, 2, Train("ck", "part.advml"));
        Assert.AreNotEqual(0, failed.Code);
        StringAssert.Contains(failed.Err, bad, "the error names the corrupt file");
        StringAssert.Contains(failed.Err, "Rank 1 of 2 failed");
        Assert.IsFalse(failed.Err.Contains("Rank 0 of 2 failed", StringComparison.Ordinal), "one error, from the rank that failed: " + failed.Err);
        string ck = Path.Combine(dir, "ck");
        Assert.AreEqual(3, Checkpoint.SavedStep(ck), "the three steps before the unreadable batch are kept");
        string replicaFile = Path.Combine(ck, "checkpoint", Checkpoint.ReplicaBuffersFile);
        Assert.IsTrue(File.Exists(replicaFile), "the checkpoint written after the failed read holds every rank's BatchNorm statistics");
        var saved = ReplicaBuffers.Read(replicaFile);
        Assert.AreEqual(2, saved.Length);
        CollectionAssert.AreNotEqual(saved[0], saved[1], "the replicas keep their own statistics (else this test shows nothing)");
        StringAssert.Contains(failed.Err, "The last checkpoint (step 3) in 'ck' is intact");

        File.WriteAllBytes(bad, good);
        var resumed = MpiJobs.Advml(TestContext, dir, 2, Train("ck", "part.advml", "--resume"));
        Assert.AreEqual(0, resumed.Code, resumed.Err);
        StringAssert.Contains(resumed.Out, "resumed at 3");
        Assert.IsFalse(resumed.Out.Contains("statistics only", StringComparison.Ordinal), "every rank resumes with its own statistics: " + resumed.Out);

        Assert.AreEqual(0.0, MpiJobs.MaxWeightDifference(Path.Combine(dir, "whole.advml"), Path.Combine(dir, "part.advml")), "weights bit-identical to the uninterrupted run");
        Assert.AreEqual(0.0, MpiJobs.MaxBufferDifference(Path.Combine(dir, "whole.advml"), Path.Combine(dir, "part.advml")), "rank 0's statistics bit-identical");
        var wholeRanks = ReplicaBuffers.Read(Path.Combine(dir, "ck-whole", "checkpoint", Checkpoint.ReplicaBuffersFile));
        var resumedRanks = ReplicaBuffers.Read(replicaFile);
        for (int r = 0; r < 2; r++)
            CollectionAssert.AreEqual(wholeRanks[r], resumedRanks[r], $"rank {r}'s BatchNorm statistics must be bit-identical to the uninterrupted run's");
    }
}
