using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>
/// Data read on demand (issue 17): IDX files by offset, batches read ahead by <see cref="BatchPrefetcher"/>, epoch
/// permutations and their shards. Streaming must never change a result: same batches, same weights, exact resume.
/// </summary>
[TestClass]
public sealed class StreamingTests
{
    /// <summary>One cache for the decompressed images file (47 MB) for every test here, so it is written once.</summary>
    private static readonly string SharedCache = Path.Combine(Path.GetTempPath(), "advml-tests", "idx-cache");

    private static IImageSource OpenTrain(int count, string? cache = null)
        => FashionMnist.Open(new FashionMnistOptions { Folder = TestData.Folder, Split = FashionMnistSplit.Train, Count = count, Subset = SubsetMode.Stratified }, cache ?? SharedCache);

    private static AdversarialTrainingOptions Options(int steps, PrefetchOptions? prefetch = null) => new()
    {
        BatchSize = 16, AdversarialPerBatch = 8, MaxSteps = steps, Epochs = 2, Method = "step-rnd", Optimizer = OptimizerKind.Adam, LearningRate = 1e-3, Seed = 5,
        Prefetch = prefetch ?? new PrefetchOptions { Workers = 3, Depth = 2 },
    };

    private static void AssertSameWeights(nn.Module a, nn.Module b, string what)
    {
        foreach (var ((name, x), (_, y)) in a.named_parameters().Zip(b.named_parameters()))
            Assert.IsTrue(x.equal(y).all().item<bool>(), $"parameter {name} differs: {what}");
    }

    [TestMethod]
    public void IdxSourceReadsTheRowsOfTheInMemoryLoaderAndDecompressesGzipOnce()
    {
        string cache = TestData.TempFolder();
        var memory = TestData.Train(300);
        var stream = OpenTrain(300, cache);
        Assert.AreEqual(memory.RowCount, stream.RowCount);
        Assert.AreEqual(memory.ImageShape, stream.ImageShape);
        CollectionAssert.AreEqual(memory.ClassNames.ToArray(), stream.ClassNames.ToArray());
        var rows = Enumerable.Range(0, 300).Reverse().ToArray();
        using (NewDisposeScope())
        {
            var (mx, my) = memory.ToTensors(rows);
            var (sx, sy) = stream.ReadBatch(rows);
            Assert.IsTrue(mx.equal(sx).all().item<bool>(), "pixels differ from the in-memory loader's");
            Assert.IsTrue(my.equal(sy).all().item<bool>(), "labels differ from the in-memory loader's");
        }
        bool gz = File.Exists(Path.Combine(TestData.Folder, "train-images-idx3-ubyte.gz"));
        Assert.AreEqual(gz ? 1 : 0, Directory.GetFiles(cache).Length, "a .gz file is decompressed into the cache, a plain one read in place");
        var before = Directory.GetFiles(cache).Select(File.GetLastWriteTimeUtc).ToArray();
        OpenTrain(10, cache);
        CollectionAssert.AreEqual(before, Directory.GetFiles(cache).Select(File.GetLastWriteTimeUtc).ToArray(), "the cached copy is reused, not written again");
        Directory.Delete(cache, recursive: true); // 47 MB; open handles keep reading until closed (Linux)
    }

    [TestMethod]
    public void StreamingTrainingEqualsInMemoryTraining()
    {
        var memory = TestData.Train(64);
        var stream = OpenTrain(64);
        // 6 steps of 4 per epoch: the second epoch's permutation too.
        manual_seed(2);
        var inMemory = new SmallCnn(rho: 0.25, dropout: 0.3);
        new AdversarialTrainer(Options(6)).Train(inMemory, memory);
        manual_seed(2);
        var streamed = new SmallCnn(rho: 0.25, dropout: 0.3);
        var result = new AdversarialTrainer(Options(6, new PrefetchOptions { Workers = 3, Depth = 2 })).Train(streamed, stream);
        Assert.AreEqual(6, result.Steps);
        AssertSameWeights(inMemory, streamed, "IDX read ahead by 3 workers vs in memory");
    }

    [TestMethod]
    public void ResumedStreamingRunEqualsUninterruptedOne()
    {
        var stream = OpenTrain(64);
        string dir = TestData.TempFolder();
        manual_seed(2);
        var uninterrupted = new SmallCnn(rho: 0.25, dropout: 0.3);
        new AdversarialTrainer(Options(6)).Train(uninterrupted, stream);

        manual_seed(2);
        var first = new SmallCnn(rho: 0.25, dropout: 0.3);
        new AdversarialTrainer(Options(3), new CheckpointOptions { Directory = dir, Every = 2 }).Train(first, stream);
        manual_seed(99);
        var resumed = new SmallCnn(rho: 0.25, dropout: 0.3);
        // Another worker count: prefetching decides when batches are read, never which.
        var result = new AdversarialTrainer(Options(6, new PrefetchOptions { Workers = 1, Depth = 5 }), new CheckpointOptions { Directory = dir, Every = 2, Resume = true })
            .Train(resumed, OpenTrain(64));
        Assert.AreEqual(3, result.ResumedFromStep);
        AssertSameWeights(uninterrupted, resumed, "resumed streaming run vs uninterrupted");
    }

    [TestMethod]
    public void EvaluatorsGiveTheSameReportsOnAStreamedSource()
    {
        var memory = TestData.Train(48);
        var stream = OpenTrain(48);
        manual_seed(4);
        using var a = new SmallCnn(rho: 0.25);
        using var b = new SmallCnn(rho: 0.25);
        var options = new Microsoft.ML.Adversarial.Evaluation.RobustnessOptions { Methods = new[] { "fgsm", "step-ll" }, Epsilons = new[] { 4.0, 16.0 }, BatchSize = 20 };
        options.Prefetch = new PrefetchOptions { Workers = 2, Depth = 1 };
        var evaluator = new Microsoft.ML.Adversarial.Evaluation.RobustnessEvaluator(options);
        CollectionAssert.AreEqual(evaluator.Evaluate(a, memory).Rows.ToArray(), evaluator.Evaluate(a, stream).Rows.ToArray());
        var transfer = new Microsoft.ML.Adversarial.Evaluation.TransferEvaluator(new Microsoft.ML.Adversarial.Evaluation.TransferOptions { Methods = new[] { "fgsm" }, BatchSize = 20, Prefetch = new PrefetchOptions { Workers = 3 } });
        var models = new Dictionary<string, nn.Module<Tensor, Tensor>> { ["a"] = a, ["b"] = b };
        CollectionAssert.AreEqual(transfer.Evaluate(models, models, memory).Rows.ToArray(), transfer.Evaluate(models, models, stream).Rows.ToArray());
    }

    [TestMethod]
    public void PrefetcherStaysWithinItsDepthAndKeepsTensorsAndBuffersFlat()
    {
        var source = FashionMnist.Open(new FashionMnistOptions { Folder = TestData.Folder }, SharedCache);
        const int batch = 64, depth = 3, count = 200;
        int[] RowsOf(long i) => EpochOrder.For(7, i * batch / source.RowCount, source.RowCount).AsSpan((int)(i * batch % source.RowCount), batch).ToArray();
        var cachedOrder = EpochOrder.For(7, 0, source.RowCount);
        using var reader = new BatchPrefetcher(source, 0, count, RowsOf, new PrefetchOptions { Workers = 4, Depth = depth });
        long baseline = DisposeScopeManager.Statistics.ThreadTotalLiveCount;
        var live = new List<long>();
        for (long i = 0; i < count; i++)
        {
            if (i % 40 == 0) Thread.Sleep(20); // a slow consumer: the workers fill the queue to its bound
            Assert.IsTrue(reader.Ahead <= depth, $"{reader.Ahead} batches ahead at batch {i}; the bound is {depth}");
            using (NewDisposeScope())
            {
                var (x, y) = reader.Take(i);
                Assert.AreEqual(batch, (int)x.shape[0]);
                if (i < 5)
                    for (int r = 0; r < batch; r++)
                        Assert.AreEqual((long)source.GetLabel(cachedOrder[i * batch + r]), y[r].item<long>(), $"batch {i} row {r} is out of order");
            }
            live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount - baseline);
        }
        Assert.AreEqual(depth, reader.MaxAhead, "the queue reaches its bound with a slow consumer, and never passes it");
        Assert.AreEqual(0, live.Max(), $"live tensors after each batch: at most {live.Max()} more than before (must stay flat)");
        Assert.IsTrue(reader.BuffersAllocated <= depth + 1, $"{reader.BuffersAllocated} pixel buffers for {count} batches: they must be reused");
        Assert.ThrowsExactly<InvalidOperationException>(() => reader.Take(count + 5));
    }

    [TestMethod]
    public void EpochOrderIsTheTrainersFixedPermutationPerEpoch()
    {
        const int seed = 11, rows = 1003;
        var whole = EpochOrder.For(seed, 3, rows);
        var expected = Enumerable.Range(0, rows).ToArray();
        new Random(unchecked(seed * 1_000_003 + 3 * 7919)).Shuffle(expected); // the formula seeded runs have always used
        CollectionAssert.AreEqual(expected, whole);
        CollectionAssert.AreEqual(whole, new AdversarialTrainer(new AdversarialTrainingOptions { Seed = seed }).EpochOrder(rows, 3));
        CollectionAssert.AreNotEqual(whole, EpochOrder.For(seed, 4, rows), "each epoch has its own permutation");
        // Sharding over ranks: DistributedTrainingTests.ShardsOfTheRanksMakeTheGlobalMinibatchAndItsAdversarialPart.
    }

    [TestMethod]
    public void AnUnreadableBatchStopsTrainingNamingTheFileAndSavesTheStepsBeforeIt()
    {
        // A 320-row IDX file whose last row is cut off after it was opened (a disk or copy failure mid-run).
        var data = TestData.Train(320);
        string folder = TestData.TempFolder(), images = Path.Combine(folder, "images-idx3-ubyte"), labels = Path.Combine(folder, "labels-idx1-ubyte");
        var pixels = new byte[320 * 784];
        var floats = new float[784];
        for (int r = 0; r < 320; r++)
        {
            data.CopyPixels(r, floats);
            for (int p = 0; p < 784; p++) pixels[r * 784 + p] = (byte)Math.Round(floats[p] * 255);
        }
        IdxFile.Write(images, new[] { 320, 28, 28 }, pixels);
        IdxFile.Write(labels, new[] { 320 }, Enumerable.Range(0, 320).Select(r => (byte)data.GetLabel(r)).ToArray());
        using var source = IdxImageSource.Open(images, labels, FashionMnist.ClassNames);
        using (var f = new FileStream(images, FileMode.Open)) f.SetLength(16 + 319 * 784);
        int failing = Array.IndexOf(EpochOrder.For(5, 0, 320), 319) / 16;
        Assert.IsTrue(failing > 0, "seed 5 puts the cut row after the first batch");

        string dir = TestData.TempFolder();
        var e = Assert.ThrowsExactly<InvalidDataException>(() =>
            new AdversarialTrainer(Options(40), new CheckpointOptions { Directory = dir, Every = 100 }).Train(new SmallCnn(rho: 0.25), source));
        StringAssert.Contains(e.Message, images);
        StringAssert.Contains(e.Message, "row 319");
        Assert.AreEqual(failing, Checkpoint.SavedStep(dir), "the steps before the unreadable batch are kept in a checkpoint");
    }
}
