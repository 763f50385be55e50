using Microsoft.ML.Adversarial.Data;
using System.Diagnostics;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Cli;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Adversarial.Training.Distributed;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>
/// Synchronous data-parallel training over MPI (issue 18), run as users run it: <c>mpirun -np 2 advml train ...
/// --distributed</c> on this machine's loopback, one thread per rank. Needs MPICH (build/setup.sh installs it); the
/// MPI tests are inconclusive, saying so, only where no mpirun is on the PATH.
/// </summary>
[TestClass]
public sealed class DistributedTrainingTests
{
    public TestContext TestContext { get; set; } = null!;

    // SmallCnn has no BatchNorm: 2 ranks x m/2 must then equal 1 rank x m up to float summation order.
    private static readonly string[] Common =
    {
        "train", "--count", "640", "--arch", "smallcnn", "--rho", "0.5", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
    };

    /// <summary>MPICH's launcher (preferred: the binding speaks the MPICH ABI), or whatever mpirun is on the PATH.</summary>
    private static string? FindMpirun()
    {
        foreach (var name in new[] { "mpiexec.mpich", "mpirun.mpich", "mpiexec.hydra", "mpirun" })
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        return null;
    }

    private static string RequireMpirun()
        => FindMpirun() ?? throw new AssertInconclusiveException(
            "mpirun is not on the PATH: MPI is not installed (build/setup.sh installs MPICH: apt-get install mpich). The 2-rank tests were not run.");

    /// <summary>Runs <c>mpirun [-np n advml args]...</c> (each part one MPMD program), one thread per rank; gives up after 120 s.</summary>
    private (int Code, string Out, string Err) MpiRun(string dir, params (int Ranks, IDictionary<string, string>? Env, string[] Args)[] programs)
    {
        string mpirun = RequireMpirun();
        var psi = new ProcessStartInfo(mpirun) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        bool openMpi = RunQuietly(mpirun, "--version").Contains("Open MPI", StringComparison.Ordinal);
        if (openMpi)
        {
            // Open MPI refuses root without this flag, and more ranks than cores without --oversubscribe.
            if (Environment.UserName == "root") psi.ArgumentList.Add("--allow-run-as-root");
            psi.ArgumentList.Add("--oversubscribe");
        }
        for (int i = 0; i < programs.Length; i++)
        {
            if (i > 0) psi.ArgumentList.Add(":");
            psi.ArgumentList.Add("-np");
            psi.ArgumentList.Add(programs[i].Ranks.ToString(System.Globalization.CultureInfo.InvariantCulture));
            foreach (var (k, v) in programs[i].Env ?? new Dictionary<string, string>())
            {
                psi.ArgumentList.Add(openMpi ? "-x" : "-env");
                if (openMpi) psi.ArgumentList.Add($"{k}={v}");
                else { psi.ArgumentList.Add(k); psi.ArgumentList.Add(v); }
            }
            psi.ArgumentList.Add("dotnet");
            psi.ArgumentList.Add(CliTests.ToolPath());
            foreach (var a in programs[i].Args) psi.ArgumentList.Add(a);
        }
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"mpirun did not finish in 120 s (a rank waiting forever?):\n{output.Result}\n{err.Result}");
        }
        TestContext.WriteLine($"mpirun -> {p.ExitCode}\n{output.Result}\n{err.Result}");
        return (p.ExitCode, output.Result, err.Result);
    }

    private static string RunQuietly(string file, string args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        string text = p.StandardOutput.ReadToEnd() + p.StandardError.ReadToEnd();
        p.WaitForExit();
        return text;
    }

    private static (int Code, string Out, string Err) OneProcess(string dir, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(CliTests.ToolPath());
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err.Result);
    }

    private static double MaxWeightDifference(string a, string b)
    {
        var (ma, _) = ModelIO.Load(a);
        var (mb, _) = ModelIO.Load(b);
        using (ma)
        using (mb)
        {
            var pb = mb.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            double max = 0;
            foreach (var (name, p) in ma.named_parameters())
                max = Math.Max(max, (p - pb[name]).abs().max().item<float>());
            return max;
        }
    }

    [TestMethod]

    [TestCategory("Slow")]
    public void TwoRanksOfHalfTheBatchEqualOneRankOfTheWholeBatch()
    {
        string dir = TestData.TempFolder();
        // Algorithm 1 with k = 16 of m = 32 (step l.l., fixed epsilon: no random draw depends on the rank), 20 steps.
        string[] run = Common.Concat(new[] { "--k", "16", "--method", "step-ll", "--epsilon", "fixed:8", "--max-steps", "20" }).ToArray();
        var two = MpiRun(dir, (2, null, run.Concat(new[] { "-o", "two.advml", "--distributed" }).ToArray()));
        Assert.AreEqual(0, two.Code, two.Err);
        Assert.AreEqual(1, two.Out.Split('\n').Count(l => l.StartsWith("Done:", StringComparison.Ordinal)), "rank 1 must print nothing:\n" + two.Out);
        Assert.AreEqual("", two.Err.Trim(), "no rank prints errors on success");
        var one = OneProcess(dir, run.Concat(new[] { "-o", "one.advml" }).ToArray());
        Assert.AreEqual(0, one.Code, one.Err);

        double difference = MaxWeightDifference(Path.Combine(dir, "one.advml"), Path.Combine(dir, "two.advml"));
        TestContext.WriteLine($"max |w_1rank - w_2ranks| after 20 steps: {difference:E2}");
        Assert.IsTrue(difference <= 1e-5, $"weights differ by {difference} (> 1e-5)");
    }

    [TestMethod]

    [TestCategory("Slow")]
    public void DistributedResumeContinuesExactlyAndNeedsTheSameNumberOfRanks()
    {
        string dir = TestData.TempFolder();
        string[] run = Common.Concat(new[] { "--k", "16", "--checkpoint-every", "5", "--distributed" }).ToArray();
        var whole = MpiRun(dir, (2, null, run.Concat(new[] { "-o", "whole.advml", "--checkpoint", "ck-whole", "--max-steps", "12" }).ToArray()));
        Assert.AreEqual(0, whole.Code, whole.Err);
        var first = MpiRun(dir, (2, null, run.Concat(new[] { "-o", "part.advml", "--checkpoint", "ck", "--max-steps", "5" }).ToArray()));
        Assert.AreEqual(0, first.Code, first.Err);

        // Another number of ranks is refused (the data order and the minibatch split depend on it), one line, no hang.
        // One rank on purpose is mpiexec -np 1: --distributed without a launcher is refused before the checkpoint is read.
        var other = MpiRun(dir, (1, null, run.Concat(new[] { "-o", "part.advml", "--checkpoint", "ck", "--max-steps", "12", "--resume" }).ToArray()));
        Assert.AreNotEqual(0, other.Code);
        StringAssert.Contains(other.Err, "Distributed.Ranks: 2 vs 1");

        var resumed = MpiRun(dir, (2, null, run.Concat(new[] { "-o", "part.advml", "--checkpoint", "ck", "--max-steps", "12", "--resume" }).ToArray()));
        Assert.AreEqual(0, resumed.Code, resumed.Err);
        StringAssert.Contains(resumed.Out, "resumed at 5");
        Assert.AreEqual(0.0, MaxWeightDifference(Path.Combine(dir, "whole.advml"), Path.Combine(dir, "part.advml")),
            "a resumed distributed run must be bit-identical to an uninterrupted one");
    }

    private static double MaxBufferDifference(string a, string b)
    {
        var (ma, _) = ModelIO.Load(a);
        var (mb, _) = ModelIO.Load(b);
        using (ma)
        using (mb)
        {
            var bb = mb.named_buffers().ToDictionary(p => p.name, p => p.buffer);
            double max = 0;
            foreach (var (name, buffer) in ma.named_buffers())
                max = Math.Max(max, (buffer.to(ScalarType.Float64) - bb[name].to(ScalarType.Float64)).abs().max().item<double>());
            return max;
        }
    }

    [TestMethod]

    [TestCategory("Slow")]
    public void DistributedResumeWithBatchNormPerReplicaContinuesExactlyOnEveryRank()
    {
        // SmallResNet has BatchNorm; each rank keeps its own running statistics (no --average-bn), and its adversarial
        // examples (made in evaluation mode) use them: a rank resumed with another rank's statistics trains differently.
        string dir = TestData.TempFolder();
        string[] run =
        {
            "train", "--count", "320", "--arch", "smallresnet", "--rho", "0.25", "--batch-size", "16", "--k", "8", "--optimizer", "sgd", "--lr", "0.05",
            "--momentum", "0.9", "--checkpoint-every", "5", "--distributed",
        };
        var whole = MpiRun(dir, (2, null, run.Concat(new[] { "-o", "whole.advml", "--checkpoint", "ck-whole", "--max-steps", "12" }).ToArray()));
        Assert.AreEqual(0, whole.Code, whole.Err);
        var first = MpiRun(dir, (2, null, run.Concat(new[] { "-o", "part.advml", "--checkpoint", "ck", "--max-steps", "5" }).ToArray()));
        Assert.AreEqual(0, first.Code, first.Err);
        var resumed = MpiRun(dir, (2, null, run.Concat(new[] { "-o", "part.advml", "--checkpoint", "ck", "--max-steps", "12", "--resume" }).ToArray()));
        Assert.AreEqual(0, resumed.Code, resumed.Err);
        StringAssert.Contains(resumed.Out, "resumed at 5");

        string wholeModel = Path.Combine(dir, "whole.advml"), partModel = Path.Combine(dir, "part.advml");
        Assert.AreEqual(0.0, MaxWeightDifference(wholeModel, partModel), "the weights (averaged gradients of both ranks) must be bit-identical");
        Assert.AreEqual(0.0, MaxBufferDifference(wholeModel, partModel), "rank 0's BatchNorm statistics must be bit-identical");
        // The final checkpoint (step 12) holds every rank's statistics: rank 1's must be bit-identical too.
        string wholeReplicas = Path.Combine(dir, "ck-whole", "checkpoint", Checkpoint.ReplicaBuffersFile);
        string partReplicas = Path.Combine(dir, "ck", "checkpoint", Checkpoint.ReplicaBuffersFile);
        var ranks = ReplicaBuffers.Read(wholeReplicas);
        Assert.AreEqual(2, ranks.Length);
        CollectionAssert.AreNotEqual(ranks[0], ranks[1], "the replicas keep their own statistics (else this test shows nothing)");
        var resumedRanks = ReplicaBuffers.Read(partReplicas);
        for (int r = 0; r < 2; r++)
            CollectionAssert.AreEqual(ranks[r], resumedRanks[r], $"rank {r}'s BatchNorm statistics must be bit-identical after resume");
    }

    [TestMethod]

    [TestCategory("Slow")]
    public void ReplicaBufferFileIsChecksummedAndGivesEachRankItsOwnStatistics()
    {
        string dir = TestData.TempFolder();
        using var model = new SmallResNet(classes: 10, rho: 0.25, inChannels: 1);
        using var optimizer = optim.SGD(model.parameters(), 0.1);
        // Two "ranks": the model's statistics as they are, and after one training-mode pass (other running statistics).
        byte[] rank0 = ReplicaBuffers.Bytes(model);
        model.train();
        using (no_grad()) model.call(rand(4, 1, 28, 28)).Dispose();
        byte[] rank1 = ReplicaBuffers.Bytes(model);
        CollectionAssert.AreNotEqual(rank0, rank1);
        Checkpoint.Save(dir, model, optimizer, 7, "fp", null, s => ReplicaBuffers.Write(s, model, new[] { rank0, rank1 }));

        Checkpoint.Load(dir, model, optimizer, "fp", null, out var saved);
        Assert.IsNotNull(saved);
        var ranks = ReplicaBuffers.Read(saved.Value.Bytes, model, 2, saved.Value.Path);
        CollectionAssert.AreEqual(rank0, ranks[0]);
        CollectionAssert.AreEqual(rank1, ranks[1]);
        ReplicaBuffers.Load(model, ranks[0]);
        CollectionAssert.AreEqual(rank0, ReplicaBuffers.Bytes(model), "a rank's bytes set its buffers back exactly");
        var other = Assert.ThrowsExactly<InvalidDataException>(() => ReplicaBuffers.Read(saved.Value.Bytes, model, 3, saved.Value.Path));
        StringAssert.Contains(other.Message, "mpirun -np 2");

        // One flipped byte in the file: refused before anything is loaded, like the model and optimiser files.
        string file = Path.Combine(dir, "checkpoint", Checkpoint.ReplicaBuffersFile);
        var bytes = File.ReadAllBytes(file);
        bytes[^1] ^= 1;
        File.WriteAllBytes(file, bytes);
        var corrupt = Assert.ThrowsExactly<InvalidDataException>(() => Checkpoint.Load(dir, model, optimizer, "fp", null, out _));
        StringAssert.Contains(corrupt.Message, Checkpoint.ReplicaBuffersFile);
        StringAssert.Contains(corrupt.Message, "checksum");
    }

    [TestMethod]

    [TestCategory("Slow")]
    public void ARankThatFailsStopsEveryRankWithItsError()
    {
        string dir = TestData.TempFolder();
        string[] run = Common.Concat(new[] { "--k", "0", "--max-steps", "5", "-o", "m.advml", "--distributed" }).ToArray();
        // Rank 1 cannot find the data; rank 0 is already waiting for it. The job must end, with rank 1's error.
        var r = MpiRun(dir, (1, null, run), (1, new Dictionary<string, string> { ["FASHION_MNIST_DIR"] = "/nonexistent-advml-data" }, run));
        Assert.AreNotEqual(0, r.Code);
        StringAssert.Contains(r.Err, "/nonexistent-advml-data");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "m.advml")), "no model from a failed job");
    }

    [TestMethod]
    [TestCategory("Slow")]
    public void RanksStartedWithDifferentSettingsAreRefusedNamingTheSetting()
    {
        // Issue 27: a different --seed trained something no one asked for; a different --count ended in MPICH's
        // "Message truncated". The ranks compare a digest of their settings and data before the first collective.
        string dir = TestData.TempFolder();
        string[] With(params string[] extra) => Common.Concat(new[] { "--k", "16", "--max-steps", "3", "-o", "m.advml", "--distributed" }).Concat(extra).ToArray();
        var seed = MpiRun(dir, (1, null, With("--seed", "1")), (1, null, With("--seed", "2")));
        Assert.AreNotEqual(0, seed.Code);
        StringAssert.Contains(seed.Err, "'Seed'");
        StringAssert.Contains(seed.Err, "differ");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "m.advml")), "no model from refused ranks");

        var fewer = With();
        fewer[Array.IndexOf(fewer, "--count") + 1] = "320";
        var count = MpiRun(dir, (1, null, With()), (1, null, fewer));
        Assert.AreNotEqual(0, count.Code);
        StringAssert.Contains(count.Err, "'Data.Rows'");
        Assert.IsFalse(count.Err.Contains("Message truncated", StringComparison.Ordinal), count.Err);
    }

    [TestMethod]
    public void WithoutAnMpiLibraryTheErrorNamesThePackage()
    {
        string dir = TestData.TempFolder();
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { CliTests.ToolPath() }.Concat(Common).Concat(new[] { "--k", "0", "--max-steps", "1", "-o", "m.advml", "--distributed" }))
            psi.ArgumentList.Add(a);
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        psi.Environment["ADVML_MPI_LIBRARY"] = "/nonexistent/libmpi.so.12";
        using var p = Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.AreEqual(2, p.ExitCode, err);
        StringAssert.Contains(err, "apt-get install mpich");
        StringAssert.Contains(err, "--distributed");
        Assert.AreEqual(1, err.Trim().Split('\n').Length, "one line, no stack trace: " + err);
    }

    [TestMethod]
    public void DistributedWithoutAnMpiLauncherIsRefusedSayingWhatToType()
    {
        // Issue 27: `advml train --distributed` typed without mpiexec trained alone (MPICH's singleton), saying nothing.
        string dir = TestData.TempFolder();
        RequireMpirun(); // MPI installed, so the library loads and the launch is the only mistake
        var r = OneProcess(dir, Common.Concat(new[] { "--k", "0", "--max-steps", "1", "-o", "m.advml", "--distributed" }).ToArray());
        TestContext.WriteLine($"exit {r.Code}\n{r.Out}\n{r.Err}");
        Assert.AreNotEqual(0, r.Code, r.Out);
        StringAssert.Contains(r.Err, "not started by an MPI launcher");
        StringAssert.Contains(r.Err, "mpiexec -np");
        Assert.AreEqual(1, r.Err.Trim().Split('\n').Length, "one line, no stack trace: " + r.Err);
        Assert.IsFalse(File.Exists(Path.Combine(dir, "m.advml")));
    }

    [TestMethod]
    public void RanksStartedWithoutDistributedAreRefusedSayingAddDistributed()
    {
        // Issue 27: `mpiexec -np 2 advml train` without --distributed started two independent runs racing for one
        // checkpoint folder and one model file; the second was refused by the folder lock without saying why it ran twice.
        string dir = TestData.TempFolder();
        var r = MpiRun(dir, (2, null, Common.Concat(new[] { "--k", "0", "--max-steps", "5", "--checkpoint", "ck", "-o", "m.advml" }).ToArray()));
        Assert.AreNotEqual(0, r.Code);
        StringAssert.Contains(r.Err, "add --distributed");
        StringAssert.Contains(r.Err, "mpiexec -np 2 advml train");
        Assert.AreEqual(1, r.Err.Split("copies of advml train").Length - 1, "rank 0 alone says it: " + r.Err);
        Assert.IsFalse(r.Err.Contains("   at ", StringComparison.Ordinal), r.Err);
        Assert.IsFalse(File.Exists(Path.Combine(dir, "m.advml")), "no model from refused ranks");
    }

    [TestMethod]
    public void ShardsOfTheRanksMakeTheGlobalMinibatchAndItsAdversarialPart()
    {
        // The one sharding rule (issue 29: there were two), the one the trainer reads its rows by (LocalEpochOrder).
        const int seed = 11, rows = 103, m = 8, k = 4, n = 4;
        var order = EpochOrder.For(seed, 2, rows);
        CollectionAssert.AreEqual(order, new AdversarialTrainer(new AdversarialTrainingOptions { Seed = seed }).LocalEpochOrder(rows, 2), "one process reads the whole permutation");
        var shards = Enumerable.Range(0, n).Select(r => EpochOrder.For(seed, 2, rows, r, n)).ToArray();
        Assert.IsTrue(shards.All(s => s.Length == rows / n && s.Length == EpochOrder.ShardLength(rows, n)), "every rank takes the same number of rows (and steps)");
        Assert.AreEqual(rows / n * n, shards.SelectMany(s => s).Distinct().Count(), "no row twice");
        CollectionAssert.AreEquivalent(order.Take(rows / n * n).ToArray(), shards.SelectMany(s => s).ToArray(), "the left-out rows are the permutation's tail");
        for (int step = 0; step < rows / n / (m / n); step++)
        {
            var global = order.Skip(step * m).Take(m).ToHashSet();
            var local = shards.SelectMany(s => s.Skip(step * (m / n)).Take(m / n)).ToHashSet();
            Assert.IsTrue(global.SetEquals(local), $"step {step}: the ranks' minibatches together are the global minibatch");
            var adversarial = shards.SelectMany(s => s.Skip(step * (m / n)).Take(k / n)).ToHashSet();
            Assert.IsTrue(order.Skip(step * m).Take(k).ToHashSet().SetEquals(adversarial), $"step {step}: the ranks' first k/N are the global first k");
        }
        CollectionAssert.AreNotEqual(EpochOrder.For(seed, 3, rows, 1, n), shards[1], "each epoch has its own rows");
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => EpochOrder.For(seed, 0, rows, n, n));
    }

    [TestMethod]
    public void ReplicaDigestSeesEveryParameter()
    {
        using var model = new SmallCnn();
        long before = Replicas.Digest(model, withBuffers: false);
        Assert.AreEqual(before, Replicas.Digest(model, withBuffers: false), "the digest is a function of the weights");
        using (no_grad()) model.parameters().Last().add_(1e-6f);
        Assert.AreNotEqual(before, Replicas.Digest(model, withBuffers: false), "a change of one weight changes the digest");
    }
}
