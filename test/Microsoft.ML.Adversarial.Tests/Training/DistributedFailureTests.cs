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

    /// <summary>The pid of the process of rank <paramref name="rank"/> of the job whose environment holds <paramref name="marker"/>, or null.</summary>
    private const string RankChild = "ADVML_RANK_CHILD=1";

    private static int? RankProcess(string marker, int rank)
    {
        foreach (var proc in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(proc), out int pid)) continue;
            try
            {
                var env = File.ReadAllText(Path.Combine(proc, "environ")).Split('\0');
                // The trainer, not its supervisor (RankSupervisor): what the out-of-memory killer would pick.
                if (env.Contains("ADVML_TEST_JOB=" + marker) && env.Contains($"PMI_RANK={rank}") && env.Contains(RankChild)) return pid;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
            }
        }
        return null;
    }

    [TestMethod]
    [TestCategory("Slow")]
    public void ARankKilledMidRunEndsTheJobKeepsTheCheckpointAndResumesExactly()
    {
        string mpiexec = MpiJobs.RequireMpiexec();
        string dir = TestData.TempFolder(), marker = Guid.NewGuid().ToString("N");
        string[] run =
        {
            "train", "--count", "640", "--arch", "smallcnn", "--rho", "0.5", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
            "--k", "16", "--epochs", "20", "--max-steps", "150", "--checkpoint-every", "5", "--distributed",
        };
        string[] Job(params string[] extra) => new[] { "-np", "2", "dotnet", CliTests.ToolPath() }.Concat(run).Concat(extra).ToArray();
        var whole = MpiJobs.Run(TestContext, dir, mpiexec, Job("-o", "whole.advml", "--checkpoint", "ck-whole"));
        Assert.AreEqual(0, whole.Code, whole.Err);

        string ck = Path.Combine(dir, "ck");
        int? victim = null;
        long? savedWhenKilled = null;
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var killed = MpiJobs.Run(TestContext, dir, mpiexec, Job("-o", "killed.advml", "--checkpoint", "ck"), env: new Dictionary<string, string> { ["ADVML_TEST_JOB"] = marker },
            whileRunning: job =>
            {
                // After the first checkpoint, kill -9 the process of rank 1 (the one whose environment has PMI_RANK=1).
                var until = DateTime.UtcNow.AddSeconds(60);
                while (DateTime.UtcNow < until && !job.HasExited && (Checkpoint.SavedStep(ck) ?? 0) < 5) Thread.Sleep(20);
                victim = RankProcess(marker, 1);
                savedWhenKilled = Checkpoint.SavedStep(ck);
                if (victim is { } pid) System.Diagnostics.Process.GetProcessById(pid).Kill();
            });
        TestContext.WriteLine($"killed rank 1 (pid {victim}) after the checkpoint of step {savedWhenKilled}; the job ended after {watch.Elapsed.TotalSeconds:F1} s");
        Assert.IsNotNull(victim, "rank 1's process was found");
        Assert.AreNotEqual(0, killed.Code, "a job with a killed rank fails");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "killed.advml")), "no model from a job that did not finish");
        long saved = Checkpoint.SavedStep(ck) ?? -1;
        Assert.IsTrue(saved >= 5 && saved < 150 && saved % 5 == 0, $"the last checkpoint ({saved}) is one of the periodic ones, before the end");
        // Hydra's banner names a PID only; the dead rank's supervisor names the rank, the signal and the checkpoint to resume.
        // (Before RankSupervisor: only "BAD TERMINATION ... EXIT CODE: 9".)
        StringAssert.Contains(killed.Err, $"advml: rank 1 of 2 died (signal 9, SIGKILL");
        StringAssert.Contains(killed.Err, $"The checkpoint of step");
        StringAssert.Contains(killed.Err, "--resume and the same -np 2");

        var resumed = MpiJobs.Run(TestContext, dir, mpiexec, Job("-o", "killed.advml", "--checkpoint", "ck", "--resume"));
        Assert.AreEqual(0, resumed.Code, resumed.Err);
        StringAssert.Contains(resumed.Out, $"resumed at {saved}");
        Assert.AreEqual(0.0, MpiJobs.MaxWeightDifference(Path.Combine(dir, "whole.advml"), Path.Combine(dir, "killed.advml")),
            "the checkpoint was intact: the resumed run is bit-identical to an uninterrupted one");
    }
}
