using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Networks;

[TestClass]
public sealed class InceptionV3Tests
{
    public TestContext TestContext { get; set; } = null!;

    [TestMethod]
    public void TorchvisionStateDictLoadsByNameAndGivesTheSameLogits()
    {
        PythonReference.Require("torch, torchvision");
        string folder = TestData.TempFolder();
        try
        {
            int rc = PythonReference.Run($"\"{PythonReference.Script("inception_reference.py")}\" \"{folder}\" 10 299", out string output);
            Assert.AreEqual(0, rc, output);
            TestContext.WriteLine(output.Trim());

            using var scope = NewDisposeScope();
            using var model = new InceptionV3(classes: 10, auxLogits: true);
            var theirKeys = File.ReadAllLines(Path.Combine(folder, "keys.txt"));
            var ourKeys = ModelIO.ParameterNames(model).ToArray();
            // Same names (TorchSharp lists all parameters before all buffers, so the order differs; loading is by name).
            Assert.AreEqual(theirKeys.Length, ourKeys.Length, "number of state-dict entries");
            Assert.IsTrue(theirKeys.ToHashSet().SetEquals(ourKeys),
                $"state-dict keys differ from torchvision's inception_v3: only theirs [{string.Join(", ", theirKeys.Except(ourKeys).Take(8))}], " +
                $"only ours [{string.Join(", ", ourKeys.Except(theirKeys).Take(8))}]");

            ModelIO.LoadWeights(model, Path.Combine(folder, "state_dict.pt"));
            model.eval();
            var x = tensor(PythonReference.ReadFloats(Path.Combine(folder, "input.bin")), new long[] { 2, 3, 299, 299 });
            var expected = tensor(PythonReference.ReadFloats(Path.Combine(folder, "logits.bin")), new long[] { 2, 10 });
            Tensor ours;
            using (no_grad()) ours = model.call(x);
            double diff = (ours - expected).abs().max().item<float>();
            double scale = Math.Max(1, expected.abs().max().item<float>());
            TestContext.WriteLine($"largest logit difference {diff:E2} (largest logit {scale:F3})");
            Assert.IsTrue(diff <= 1e-4 * scale, $"logits differ from torchvision's by {diff}");
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void RhoScalesEveryConvolutionAndDeeperAddsTwoBlocks()
    {
        using var full = new InceptionV3(classes: 10, auxLogits: false);
        using var half = new InceptionV3(classes: 10, rho: 0.5, auxLogits: false);
        using var deeper = new InceptionV3(classes: 10, rho: 0.5, deeper: true, auxLogits: false);
        var fullParams = full.state_dict();
        var halfParams = half.state_dict();

        CollectionAssert.AreEqual(fullParams.Keys.ToArray(), halfParams.Keys.ToArray(), "rho must not change the layer names");
        foreach (var (name, w) in fullParams.Where(p => p.Key.EndsWith("conv.weight")))
        {
            long outFull = w.shape[0], outHalf = halfParams[name].shape[0];
            Assert.AreEqual(Math.Max(1, (long)Math.Round(outFull * 0.5)), outHalf, $"{name}: {outFull} filters at rho 1, {outHalf} at rho 0.5");
        }
        Assert.IsFalse(fullParams.Keys.Any(k => k.StartsWith("AuxLogits")), "auxLogits: false must leave out the side classifier");
        var extra = deeper.state_dict().Keys.Select(k => k.Split('.')[0]).Distinct().Except(halfParams.Keys.Select(k => k.Split('.')[0])).ToArray();
        CollectionAssert.AreEquivalent(new[] { "Mixed_6f", "Mixed_6g" }, extra);
        long Count(nn.Module m) => m.parameters().Sum(p => p.numel());
        double ratio = (double)Count(half) / Count(full);
        Assert.IsTrue(ratio is > 0.2 and < 0.3, $"half width should have about a quarter of the parameters; ratio {ratio:F3}");
    }

    [TestMethod]
    public void DeeperHalfWidthInceptionTakesAnAdversarialTrainingStepOn75x75Images()
    {
        // Grey Fashion-MNIST repeated into 3 channels and padded to 75 x 75: real images at Inception's smallest size.
        var source = TestData.Train(8);
        var pixels = new float[8 * 3 * 75 * 75];
        var one = new float[28 * 28];
        var labels = new uint[8];
        for (int i = 0; i < 8; i++)
        {
            source.CopyPixels(i, one);
            labels[i] = source.GetLabel(i);
            for (int c = 0; c < 3; c++)
                for (int r = 0; r < 28; r++)
                    one.AsSpan(r * 28, 28).CopyTo(pixels.AsSpan(((i * 3 + c) * 75 + r + 23) * 75 + 23, 28));
        }
        var data = ImageSet.FromFloats(pixels, labels, FashionMnist.ClassNames, (3, 75, 75));

        manual_seed(5);
        using var model = (InceptionV3)new ModelSpec(ModelArchitecture.InceptionV3, Rho: 0.5) { Deeper = true, AuxLogits = true }.Create(10, (3, 75, 75));
        var before = model.state_dict().ToDictionary(p => p.Key, p => p.Value.clone());
        var options = new AdversarialTrainingOptions { BatchSize = 8, AdversarialPerBatch = 4, MaxSteps = 1, Optimizer = OptimizerKind.RmsProp, Seed = 1 };
        var result = new AdversarialTrainer(options).Train(model, data);

        Assert.AreEqual(1, result.Steps);
        Assert.IsTrue(double.IsFinite(result.FinalLoss), $"loss {result.FinalLoss}");
        var after = model.state_dict();
        foreach (var name in new[] { "Conv2d_1a_3x3.conv.weight", "Mixed_6g.branch1x1.conv.weight", "AuxLogits.fc.weight", "fc.weight" })
            Assert.IsFalse(after[name].equal(before[name]).all().item<bool>(), $"{name} did not change: no gradient reached it");
        Assert.IsFalse(after["Conv2d_1a_3x3.bn.running_mean"].equal(before["Conv2d_1a_3x3.bn.running_mean"]).all().item<bool>(),
            "BatchNorm statistics must update in the training forward pass");
        using (no_grad())
            CollectionAssert.AreEqual(new long[] { 8, 10 }, model.call(data.ToTensors(0, 8).Images).shape);
    }
}
