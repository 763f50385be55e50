using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>Issue 27, items 3, 7 and 8: what <c>advml attack</c> writes, replaces and shares.</summary>
[TestClass]
public sealed class CliAttackOutputTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>A test/ folder of one uniform grey 28x28 PNG per class, and an untrained SmallCnn over those classes.</summary>
    internal static void MakeDataAndModel(string dir, IReadOnlyList<string> classes, int imagesPerClass = 1)
    {
        using var bitmap = new SKBitmap(28, 28, SKColorType.Gray8, SKAlphaType.Opaque);
        bitmap.Erase(new SKColor(128, 128, 128));
        using var png = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        var bytes = png.ToArray();
        foreach (var split in new[] { "train", "test" })
            foreach (var c in classes)
            {
                Directory.CreateDirectory(Path.Combine(dir, "data", split, c));
                for (int i = 0; i < imagesPerClass; i++) File.WriteAllBytes(Path.Combine(dir, "data", split, c, $"img{i}.png"), bytes);
            }
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        TorchSharp.torch.manual_seed(1);
        using var model = spec.Create(classes.Count, (1, 28, 28));
        ModelIO.Save(model, new ModelDescription(spec, classes.Count, 1, 28, 28, classes.ToArray()), Path.Combine(dir, "m.advml"));
    }

    internal static string[] DataArgs => new[] { "--data", "data", "--grayscale", "--image-size", "28" };

    /// <summary>Item 3: class 256 was written as label 0 (a byte); the labels file now holds every class index, and reads back.</summary>
    [TestMethod]
    public void IdxLabelsPast255ReadBackAsWritten()
    {
        string dir = TestData.TempFolder();
        var classes = Enumerable.Range(0, 1001).Select(i => $"c{i}").ToArray();
        MakeDataAndModel(dir, classes);
        var r = CliTests.Advml(dir, new[] { "attack", "--model", "m.advml", "--method", "fgsm", "--epsilon", "4", "--count", "1001", "--format", "idx", "-o", "adv" }
            .Concat(DataArgs).ToArray());
        Assert.AreEqual(0, r.Code, r.Err);
        using var source = IdxImageSource.Open(Path.Combine(dir, "adv", "images-idx-ubyte"), Path.Combine(dir, "adv", "labels-idx1-ubyte"), classes);
        var labels = Enumerable.Range(0, source.RowCount).Select(source.GetLabel).ToList();
        Assert.AreEqual(1001, labels.Count);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 1001).Select(i => (uint)i).ToList(), labels, "one image per class, each with its own class index");
        CollectionAssert.Contains(labels, 256u);
        CollectionAssert.Contains(labels, 1000u);
    }
}
