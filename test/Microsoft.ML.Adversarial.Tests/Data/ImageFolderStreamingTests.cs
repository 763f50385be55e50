using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Tests.Cli;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Data;

/// <summary>Image folders decoded batch by batch (<see cref="ImageFolderSource"/>, issue 17), in the library and through <c>advml train</c>.</summary>
[TestClass]
public sealed class ImageFolderStreamingTests
{
    private static ImageFolderOptions Grey28(string folder) => new() { Folder = folder, Height = 28, Width = 28, Grayscale = true };

    [TestMethod]
    public void FolderSourceReadsThePixelsAndLabelsOfTheInMemoryReader()
    {
        string train = Path.Combine(CliImageFolderTests.MakeFolder(trainPerClass: 4, testPerClass: 1), "train");
        var memory = ImageSetReader.Read(new MLContext().Data.LoadFromImageFolder(Grey28(train)));
        var stream = ImageFolderSource.Open(Grey28(train));
        Assert.AreEqual(memory.RowCount, stream.RowCount);
        Assert.AreEqual(memory.ImageShape, stream.ImageShape);
        CollectionAssert.AreEqual(memory.ClassNames.ToArray(), stream.ClassNames.ToArray());
        // Shuffled rows, one of them twice: rows are placed by file, not by the order the decoder returns them.
        var rows = EpochOrder.For(3, 0, stream.RowCount).Append(0).ToArray();
        using (NewDisposeScope())
        {
            var (mx, my) = memory.ToTensors(rows);
            var (sx, sy) = stream.ReadBatch(rows);
            Assert.IsTrue(my.equal(sy).all().item<bool>(), "labels differ from the in-memory reader's");
            Assert.IsTrue(mx.equal(sx).all().item<bool>(), $"pixels differ from the in-memory reader's by up to {(mx - sx).abs().max().item<float>()}");
        }
        Assert.AreEqual(stream.Fingerprint(), ImageFolderSource.Open(Grey28(train)).Fingerprint());
        Assert.AreNotEqual(stream.Fingerprint(), ImageFolderSource.Open(new ImageFolderOptions { Folder = train, Height = 14, Width = 14, Grayscale = true }).Fingerprint());
    }

    [TestMethod]
    public void EstimatorFitThroughADiskFileEqualsFitInMemoryAndDeletesTheFile()
    {
        var ml = new MLContext(seed: 1);
        var fm = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 64, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var view = ml.Transforms.CopyColumns("Copy", "Pixels").Fit(fm).Transform(fm); // any IDataView, not the in-memory one
        string cache = TestData.TempFolder();
        Microsoft.ML.Adversarial.MLNet.AdversarialTrainingEstimator.Options Options(string? folder) => new()
        {
            Model = new Microsoft.ML.Adversarial.Models.ModelSpec(Rho: 0.25), BatchSize = 16, AdversarialPerBatch = 8, Method = "step-rnd", Epochs = 2, MaxSteps = 6, Seed = 3,
            DiskCacheFolder = folder, Prefetch = new PrefetchOptions { Workers = 2, Depth = 2 },
        };
        var inMemory = ml.MulticlassClassification.Trainers.AdversarialTraining(Options(null)).Fit(view);
        var onDisk = ml.MulticlassClassification.Trainers.AdversarialTraining(Options(cache)).Fit(view);
        foreach (var ((name, a), (_, b)) in inMemory.Model.named_parameters().Zip(onDisk.Model.named_parameters()))
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"parameter {name} differs between Fit in memory and through a file");
        Assert.AreEqual(0, Directory.GetFiles(cache).Length, "the row file is deleted after Fit");
        using var file = ImageSetReader.ReadToFile(view, folder: cache);
        Assert.AreEqual(ImageSetReader.Read(view).Fingerprint(), file.Fingerprint(), "same rows, same fingerprint: a checkpoint resumes across both");
    }

    [TestMethod]
    public void ACorruptImageMidStreamNamesTheFileKeepsTheStepsAndResumesOnceReplaced()
    {
        string folder = CliImageFolderTests.MakeFolder(trainPerClass: 8, testPerClass: 1), dir = TestData.TempFolder(), checkpoint = Path.Combine(dir, "ck");
        string train = Path.Combine(folder, "train");
        // 80 images, batches of 16: the file at position 40 of epoch 0's order is read at step 3 (index 2).
        string bad = ImageFolderSource.Open(Grey28(train)).FileOf(EpochOrder.For(3, 0, 80)[40]);
        var good = File.ReadAllBytes(bad);
        File.WriteAllBytes(bad, TestImages.CorruptPixelData(28, 28));
        string[] Train(params string[] extra) => new[] { "train", "-o", "m.advml", "--k", "8", "--rho", "0.25", "--epochs", "2", "--batch-size", "16", "--seed", "3",
            "--checkpoint", checkpoint, "--checkpoint-every", "100", "--data", folder, "--grayscale", "--image-size", "28" }.Concat(extra).ToArray();

        var failed = CliTests.Advml(dir, Train());
        Assert.AreEqual(1, failed.Code, failed.Err + failed.Out);
        StringAssert.Contains(failed.Err, bad, "the error names the corrupt file");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "m.advml")), "no model from a run that did not finish");
        Assert.AreEqual(2, Microsoft.ML.Adversarial.Training.Checkpoint.SavedStep(checkpoint), "the two steps before the corrupt file are kept");

        File.WriteAllBytes(bad, good); // a good copy: same data set, so the run resumes
        var resumed = CliTests.Advml(dir, Train("--resume"));
        Assert.AreEqual(0, resumed.Code, resumed.Err + resumed.Out);
        StringAssert.Contains(resumed.Out, "resumed at 2");
        Assert.IsTrue(File.Exists(Path.Combine(dir, "m.advml")));
    }
}
