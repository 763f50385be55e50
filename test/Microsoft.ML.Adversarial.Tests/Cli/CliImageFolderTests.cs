using System.Reflection.Metadata;
using System.Reflection.PortableExecutable;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Data;
using SkiaSharp;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>The advml tool on an image folder (--data), the way a user with their own images runs it.</summary>
[TestClass]
public sealed class CliImageFolderTests
{
    public TestContext TestContext { get; set; } = null!;

    private static readonly string[] Data = { "--grayscale", "--image-size", "28" };

    /// <summary>
    /// train/ and test/ with the 10 Fashion-MNIST classes: grey PNGs (colour type 0), one RGB PNG and two RGB JPEGs
    /// (tinted, so the grey conversion has work to do).
    /// </summary>
    internal static string MakeFolder(int trainPerClass = 8, int testPerClass = 3)
    {
        string root = TestData.TempFolder();
        foreach (var (split, source, perClass) in new[] { ("train", TestData.Train(10 * trainPerClass), trainPerClass), ("test", TestData.Test(10 * testPerClass), testPerClass) })
        {
            var pixels = new float[784];
            for (int i = 0; i < source.RowCount; i++)
            {
                source.CopyPixels(i, pixels);
                var grey = pixels.Select(v => (byte)Math.Round(v * 255)).ToArray();
                string dir = Path.Combine(root, split, ClassMatch.FolderName(source.ClassNames[(int)source.GetLabel(i)]));
                Directory.CreateDirectory(dir);
                if (i == 1 || i == 2) WriteJpeg(Path.Combine(dir, $"{i:D4}.jpg"), grey);
                else if (i == 3) File.WriteAllBytes(Path.Combine(dir, $"{i:D4}.png"), TestImages.Png(28, 28, 2, grey.SelectMany(g => new[] { g, (byte)(g * 0.9), (byte)(g * 0.8) }).ToArray()));
                else File.WriteAllBytes(Path.Combine(dir, $"{i:D4}.png"), TestImages.Png(28, 28, 0, grey));
            }
        }
        return root;
    }

    private static void WriteJpeg(string path, byte[] grey)
    {
        using var bitmap = new SKBitmap(new SKImageInfo(28, 28, SKColorType.Rgba8888, SKAlphaType.Opaque));
        for (int p = 0; p < grey.Length; p++) bitmap.SetPixel(p % 28, p / 28, new SKColor(grey[p], (byte)(grey[p] * 0.85), (byte)(grey[p] * 0.7)));
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Jpeg, 95);
        File.WriteAllBytes(path, data.ToArray());
    }

    private static string[] With(string folder, params string[] args) => args.Concat(new[] { "--data", folder }).Concat(Data).ToArray();

    [TestMethod]
    public void TrainAttackEvaluateAndTransferWorkOnAnImageFolder()
    {
        string folder = MakeFolder(), dir = TestData.TempFolder();
        var train = CliTests.Advml(dir, With(folder, "train", "-o", "a.advml", "--k", "0", "--rho", "0.25", "--max-steps", "4", "-m", "16"));
        Assert.AreEqual(0, train.Code, train.Err + train.Out);
        var trainB = CliTests.Advml(dir, With(folder, "train", "-o", "b.advml", "--k", "4", "--rho", "0.25", "--max-steps", "3", "-m", "16", "--seed", "2"));
        Assert.AreEqual(0, trainB.Code, trainB.Err + trainB.Out);
        var (model, description) = ModelIO.Load(Path.Combine(dir, "a.advml"));
        Assert.AreEqual((1, 28, 28), (description.Channels, description.Height, description.Width));
        CollectionAssert.AreEqual(Directory.GetDirectories(Path.Combine(folder, "train")).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray(), description.ClassNames!.ToArray());

        // evaluate: the clean accuracy it reports is the model's accuracy on the folder, as the library computes it.
        var eval = CliTests.Advml(dir, With(folder, "evaluate", "--model", "a.advml", "--methods", "fgsm", "--epsilons", "8", "-o", "eval.json"));
        Assert.AreEqual(0, eval.Code, eval.Err + eval.Out);
        var test = ImageSetReader.Read(new MLContext().Data.LoadFromImageFolder(new ImageFolderOptions { Folder = Path.Combine(folder, "test"), Height = 28, Width = 28, Grayscale = true }));
        double expected;
        using (var scope = torch.NewDisposeScope())
        using (torch.no_grad())
        {
            model.eval();
            var (x, y) = test.ToTensors(0, test.RowCount);
            expected = model.forward(x).argmax(1).eq(y).sum().item<long>() / (double)test.RowCount;
        }
        using (var json = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "eval.json"))))
        {
            var rows = json.RootElement.GetProperty("Rows").EnumerateArray().ToList();
            Assert.AreEqual(2, rows.Count, "clean + fgsm at eps 8");
            var clean = rows.Single(r => r.GetProperty("Method").GetString() == "clean");
            Assert.AreEqual(test.RowCount, clean.GetProperty("Count").GetInt32());
            Assert.AreEqual(expected, clean.GetProperty("Top1").GetDouble(), 1e-9, "evaluate's clean accuracy differs from the library's on the same folder");
        }

        // attack: PNGs that decode, one per test image, in the test classes, each within epsilon of a clean image of its class.
        var attack = CliTests.Advml(dir, With(folder, "attack", "--model", "a.advml", "--method", "fgsm", "--epsilon", "16", "-o", "adv"));
        Assert.AreEqual(0, attack.Code, attack.Err + attack.Out);
        var pngs = Directory.GetFiles(Path.Combine(dir, "adv"), "*.png", SearchOption.AllDirectories);
        Assert.AreEqual(test.RowCount, pngs.Length);
        var adversarial = new MLContext().Data.LoadFromImageFolder(new ImageFolderOptions { Folder = Path.Combine(dir, "adv"), Height = 28, Width = 28, Grayscale = true });
        var advPixels = TestData.ReadVectors(adversarial, "Pixels");
        var advClasses = TestData.ReadKeys(adversarial).Select(k => TestData.KeyNames(adversarial)[k - 1]).ToList();
        var clean28 = new float[784];
        int moved = 0;
        for (int i = 0; i < advPixels.Count; i++)
        {
            double nearest = double.MaxValue;
            for (int j = 0; j < test.RowCount; j++)
            {
                if (ClassMatch.FolderName(test.ClassNames[(int)test.GetLabel(j)]) != advClasses[i]) continue;
                test.CopyPixels(j, clean28);
                nearest = Math.Min(nearest, advPixels[i].Zip(clean28, (a, c) => Math.Abs(a - c)).Max());
            }
            Assert.IsTrue(nearest <= 16.5 / 255, $"adversarial image {i} ({advClasses[i]}) is {nearest * 255:F1} pixel values from every clean image of its class; epsilon is 16");
            if (nearest > 0.5 / 255) moved++;
        }
        Assert.IsTrue(moved > advPixels.Count / 2, $"only {moved} of {advPixels.Count} images were perturbed");

        var transfer = CliTests.Advml(dir, With(folder, "transfer", "--models", "A=a.advml,B=b.advml", "--methods", "fgsm", "-o", "transfer.json"));
        Assert.AreEqual(0, transfer.Code, transfer.Err + transfer.Out);
        StringAssert.Contains(transfer.Out, "transfer rate");
        Assert.IsTrue(new FileInfo(Path.Combine(dir, "transfer.json")).Length > 20);
        Assert.IsFalse(Directory.EnumerateFiles(dir, "*.tmp*", SearchOption.AllDirectories).Any(), "no temporary files may remain");
    }

    [TestMethod]
    public void ACorruptImageInTheMiddleOfAFolderIsNamedInOneLine()
    {
        string folder = MakeFolder(trainPerClass: 2, testPerClass: 1), dir = TestData.TempFolder();
        string victim = Directory.GetFiles(Path.Combine(folder, "train", "Dress"), "*.png").Order(StringComparer.Ordinal).First();
        File.WriteAllBytes(victim, TestImages.CorruptPixelData(28, 28));
        var run = CliTests.Advml(dir, With(folder, "train", "-o", "m.advml", "--k", "0", "--rho", "0.25", "--max-steps", "1"));
        TestContext.WriteLine(run.Err);
        Assert.AreNotEqual(0, run.Code, "training on a folder with a corrupt image must fail, not read it as a blank image");
        var lines = run.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.AreEqual(1, lines.Length, run.Err);
        StringAssert.Contains(lines[0], victim);
        Assert.IsFalse(File.Exists(Path.Combine(dir, "m.advml")));
    }

    /// <summary>
    /// One process loads one SkiaSharp. Every assembly the CLI ships that uses SkiaSharp (ML.NET ImageAnalytics,
    /// TorchSharp, the figures) must be built against the SkiaSharp it ships: with ScottPlot 5.1's SkiaSharp 3.x,
    /// ImageAnalytics (built against 2.88) failed on every image folder with MissingMethodException.
    /// </summary>
    [TestMethod]
    public void EveryAssemblyTheCliShipsUsesTheSkiaSharpItShips()
    {
        string bin = Path.GetDirectoryName(CliTests.ToolPath())!;
        Version shipped = AssemblyName(Path.Combine(bin, "SkiaSharp.dll")).Version!;
        var users = new List<string>();
        foreach (string dll in Directory.GetFiles(bin, "*.dll"))
        {
            using var pe = new PEReader(File.OpenRead(dll));
            if (!pe.HasMetadata) continue;
            var md = pe.GetMetadataReader();
            foreach (var handle in md.AssemblyReferences)
            {
                var reference = md.GetAssemblyReference(handle);
                if (md.GetString(reference.Name) != "SkiaSharp") continue;
                users.Add(Path.GetFileName(dll));
                Assert.AreEqual((shipped.Major, shipped.Minor), (reference.Version.Major, reference.Version.Minor),
                    $"{Path.GetFileName(dll)} is built against SkiaSharp {reference.Version}, but the CLI ships SkiaSharp {shipped}. " +
                    "Pin SkiaSharp in Directory.Packages.props to the version Microsoft.ML.ImageAnalytics uses, and drop the package that pulls in the other.");
            }
        }
        CollectionAssert.Contains(users, "Microsoft.ML.ImageAnalytics.dll");
        CollectionAssert.Contains(users, "advml.dll", "the figures draw with the shipped SkiaSharp");
    }

    private static System.Reflection.AssemblyName AssemblyName(string path) => System.Reflection.AssemblyName.GetAssemblyName(path);
}
