using System.Text;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Data;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>
/// evaluate, transfer and attack on an image folder read it batch by batch (ImageFolderSource) instead of into memory:
/// the results must be those of the in-memory path on the same data, and a bad file is still named.
/// </summary>
[TestClass]
public sealed class CliStreamingTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly string[] Data = { "--grayscale", "--image-size", "28" };

    /// <summary>A seeded SmallCnn whose classes are Fashion-MNIST's in their own order (not the folder's ordinal order).</summary>
    private static (string Path, torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) SaveModel(string dir)
    {
        torch.manual_seed(5);
        var model = new SmallCnn(rho: 0.25);
        model.eval();
        var description = new ModelDescription(new ModelSpec(Rho: 0.25), 10, 1, 28, 28, FashionMnist.ClassNames.ToArray());
        string path = Path.Combine(dir, "m.advml");
        ModelIO.Save(model, description, path);
        return (path, model, description);
    }

    [TestMethod]
    public void EvaluateOnAFolderGivesTheReportOfTheInMemoryLibraryPath()
    {
        string folder = CliImageFolderTests.MakeFolder(trainPerClass: 1, testPerClass: 4), dir = TestData.TempFolder();
        var (path, model, description) = SaveModel(dir);
        var run = CliTests.Advml(dir, new[] { "evaluate", "--model", path, "--count", "30", "--methods", "fgsm,iter-ll", "--epsilons", "4,16", "--batch-size", "8",
            "-o", "eval.json", "--data", folder }.Concat(Data).ToArray());
        Assert.AreEqual(0, run.Code, run.Err + run.Out);

        // The library on the same folder, read into memory as the CLI did before: ImageSetReader, stratified subset, classes
        // renumbered to the model's by name (the folder's "T-shirt_top" is the model's "T-shirt/top", the order differs).
        var inMemory = ImageSetReader.Read(new MLContext(1).Data.LoadFromImageFolder(new ImageFolderOptions { Folder = Path.Combine(folder, "test"), Height = 28, Width = 28, Grayscale = true }))
            .Stratified(30).AlignTo(description.ClassNames!);
        Assert.IsFalse(inMemory.ClassNames.SequenceEqual(ImageFolder.Scan(Path.Combine(folder, "test")).Classes), "the test must exercise a class renumbering");
        var expected = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm", "iter-ll" }, Epsilons = new[] { 4.0, 16.0 }, BatchSize = 8, Seed = 1 })
            .Evaluate(model, inMemory, "m");
        Assert.AreEqual(expected.ToJson(), File.ReadAllText(Path.Combine(dir, "eval.json")), "the streamed evaluate must report what the in-memory library path reports");
        Assert.AreEqual(30, expected.Rows.Single(r => r.Method == "clean").Count);
    }

    [TestMethod]
    public void ACorruptImageInTheEvaluatedFolderIsNamedAndAttackLeavesNothing()
    {
        string folder = CliImageFolderTests.MakeFolder(trainPerClass: 1, testPerClass: 3), dir = TestData.TempFolder();
        var (path, _, _) = SaveModel(dir);
        string victim = Directory.GetFiles(Path.Combine(folder, "test", "Sandal"), "*.png").Order(StringComparer.Ordinal).Last();
        File.WriteAllBytes(victim, TestImages.CorruptPixelData(28, 28));

        var eval = CliTests.Advml(dir, new[] { "evaluate", "--model", path, "--methods", "fgsm", "--epsilons", "8", "--batch-size", "4", "-o", "out/eval.json", "--data", folder }.Concat(Data).ToArray());
        TestContext.WriteLine(eval.Err);
        Assert.AreEqual(1, eval.Code, "a corrupt image must fail the evaluation (exit 1, as a data error), not be read as blank pixels: " + eval.Err);
        var lines = eval.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(1, lines.Length, eval.Err);
        StringAssert.Contains(lines[0], victim);
        StringAssert.Contains(lines[0], "corrupt");
        Assert.IsFalse(Directory.Exists(Path.Combine(dir, "out")), "the folder made for the report is removed when the evaluation fails");

        var attack = CliTests.Advml(dir, new[] { "attack", "--model", path, "--method", "fgsm", "--batch-size", "4", "-o", "adv", "--data", folder }.Concat(Data).ToArray());
        Assert.AreNotEqual(0, attack.Code);
        StringAssert.Contains(attack.Err, victim);
        Assert.IsFalse(Directory.Exists(Path.Combine(dir, "adv")), "a failed attack leaves no output folder");
    }

    /// <summary>
    /// The compact file list (UTF-8 paths, class indices) gives the files, labels and fingerprint the list of strings gave:
    /// checkpoints written before it still resume. The fingerprint is recomputed here by the formula of that version.
    /// </summary>
    [TestMethod]
    public void TheCompactFileListKeepsFilesLabelsAndFingerprint()
    {
        string folder = CliImageFolderTests.MakeFolder(trainPerClass: 1, testPerClass: 2), test = Path.Combine(folder, "test");
        // A non-ASCII name (UTF-8 round trip) and a class listed in class-names.json under another name.
        File.Copy(Directory.GetFiles(Path.Combine(test, "Bag"))[0], Path.Combine(test, "Bag", "sac-à-main-ü.png"));
        ClassMatch.WriteClassNames(test, new[] { "T-shirt/top" }, new[] { "T-shirt_top" });
        var options = new ImageFolderOptions { Folder = test, Height = 28, Width = 28, Grayscale = true };
        var source = ImageFolderSource.Open(options);

        // The listing, made independently: classes in the names file first, then the other folders in ordinal order; files sorted ordinally.
        var folders = new[] { "T-shirt_top" }.Concat(Directory.GetDirectories(test).Select(Path.GetFileName).OfType<string>().Where(f => f != "T-shirt_top").Order(StringComparer.Ordinal)).ToList();
        var classes = folders.Select(f => f == "T-shirt_top" ? "T-shirt/top" : f).ToList();
        var files = folders.SelectMany((f, c) => Directory.GetFiles(Path.Combine(test, f)).Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)
            .Select(n => (Path: Path.Combine(f, n), Class: c))).ToList();
        CollectionAssert.AreEqual(classes, source.ClassNames.ToList());
        Assert.AreEqual(files.Count, source.RowCount);
        for (int i = 0; i < files.Count; i++)
        {
            Assert.AreEqual(Path.Combine(test, files[i].Path), source.FileOf(i));
            Assert.AreEqual((uint)files[i].Class, source.GetLabel(i));
        }
        CollectionAssert.AreEqual(files.Select(f => (f.Path, classes[f.Class])).ToList(), ImageFolder.Scan(test).Images.ToList());

        using (var hash = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256))
        {
            hash.AppendData(Encoding.UTF8.GetBytes($"folder;28x28;grey=True;{options.Resizing};bg={options.Background:R};"));
            foreach (var (p, c) in files) hash.AppendData(Encoding.UTF8.GetBytes($"{p}\n{classes[c]}\n"));
            Assert.AreEqual(Convert.ToHexString(hash.GetHashAndReset())[..32], source.Fingerprint());
        }

        // Classes renumbered to a model's order without reading pixels: the labels the in-memory AlignTo gives.
        var inMemory = ImageSetReader.Read(ImageFolder.Load(new MLContext(1), options));
        var model = FashionMnist.ClassNames.ToArray();
        var aligned = source.AlignTo(model);
        var alignedInMemory = inMemory.AlignTo(model);
        CollectionAssert.AreEqual(model, aligned.ClassNames.ToArray());
        CollectionAssert.AreEqual(Enumerable.Range(0, inMemory.RowCount).Select(alignedInMemory.GetLabel).ToArray(), Enumerable.Range(0, aligned.RowCount).Select(aligned.GetLabel).ToArray());
        using (torch.NewDisposeScope())
        {
            var (x, _) = aligned.ReadBatch(Enumerable.Range(0, aligned.RowCount).ToArray());
            var (y, _) = alignedInMemory.ToTensors(0, alignedInMemory.RowCount);
            Assert.IsTrue(x.equal(y).all().item<bool>(), "relabelling leaves the pixels as they are");
        }
        Assert.AreNotEqual(source.Fingerprint(), aligned.Fingerprint(), "another label order is another data set for a checkpoint");
        var e = Assert.ThrowsExactly<ArgumentException>(() => source.AlignTo(model.Take(9).Append("Sneakers").ToArray(), "the folder", "model 'm'"));
        StringAssert.Contains(e.Message, "'Sneaker'");
    }
}
