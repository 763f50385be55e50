using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary><c>advml import</c>: a PyTorch state dict becomes a model file that evaluate (and the other commands) take.</summary>
[TestClass]
public sealed class CliImportTests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void ImportedResNetLoadsWithItsRangeAndIsEvaluatedOnAnImageFolder()
    {
        string dir = TestData.TempFolder(), folder = CliImageFolderTests.MakeFolder(trainPerClass: 1, testPerClass: 2);
        var classes = FashionMnist.ClassNames.Select(ClassMatch.FolderName).ToArray();
        File.WriteAllLines(Path.Combine(dir, "classes.txt"), classes);
        manual_seed(4);
        using var resnet = new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), 10, 3, 32, 32).CreateModel();
        ModelIO.SavePyTorch(resnet, Path.Combine(dir, "resnet18.pt"));
        resnet.eval();

        var import = CliTests.Advml(dir, "import", "--arch", "resnet18", "--weights", "resnet18.pt", "--classes-file", "classes.txt", "--image-size", "32", "--range", "imagenet", "-o", "r.advml");
        TestContext.WriteLine(import.Out + import.Err);
        Assert.AreEqual(0, import.Code, import.Err);
        var (model, description) = ModelIO.Load(Path.Combine(dir, "r.advml"));
        using (model)
        {
            Assert.AreEqual(ModelArchitecture.ResNet18, description.Spec.Architecture);
            Assert.AreEqual(InputRange.ImageNet.Description, description.InputRangeOrDefault.Description);
            CollectionAssert.AreEqual(classes, description.ClassNames!.ToArray());
            var x = rand(2, 3, 32, 32);
            using var _ = no_grad();
            Assert.AreEqual(0f, (model.call(x) - resnet.call(x)).abs().max().item<float>(), "the model file gives the state dict's logits");
        }

        // Evaluate feeds [0, 1] images through the model's ImageNet normalisation.
        var eval = CliTests.Advml(dir, "evaluate", "--model", "r.advml", "--data", folder, "--image-size", "32", "--methods", "fgsm", "--epsilons", "16", "-o", "eval.json");
        TestContext.WriteLine(eval.Out + eval.Err);
        Assert.AreEqual(0, eval.Code, eval.Err);
        Assert.IsTrue(File.Exists(Path.Combine(dir, "eval.json")));

        var wrong = CliTests.Advml(dir, "import", "--arch", "resnet34", "--weights", "resnet18.pt", "--classes-file", "classes.txt", "--image-size", "32", "-o", "w.advml");
        Assert.AreNotEqual(0, wrong.Code);
        StringAssert.Contains(wrong.Err, "layer1.2.conv1.weight");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "w.advml")), "nothing is written when the names do not match");
        var badRange = CliTests.Advml(dir, "import", "--arch", "resnet18", "--weights", "resnet18.pt", "--classes", "a,b", "--range", "mean=0.5;std=0.2,0.2", "-o", "w.advml");
        Assert.AreNotEqual(0, badRange.Code);
        StringAssert.Contains(badRange.Err, "--range");
        Directory.Delete(dir, true);
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void PixelRangeAdapterFeedsUnitImagesInTheNetworksRange()
    {
        // The adapter composed with the network equals the network on normalised images.
        manual_seed(5);
        using var net = new ModelDescription(new ModelSpec(ModelArchitecture.MobileNetV2), 10, 3, 32, 32).CreateModel();
        net.eval();
        using var adapted = new PixelRangeAdapter(net, InputRange.ImageNet);
        var u = rand(2, 3, 32, 32);
        var mean = tensor(new[] { 0.485f, 0.456f, 0.406f }).view(1, 3, 1, 1);
        var std = tensor(new[] { 0.229f, 0.224f, 0.225f }).view(1, 3, 1, 1);
        using var _ = no_grad();
        float diff = (adapted.call(u) - net.call((u - mean) / std)).abs().max().item<float>();
        Assert.IsTrue(diff < 1e-5f, $"adapter differs by {diff}");
    }
}
