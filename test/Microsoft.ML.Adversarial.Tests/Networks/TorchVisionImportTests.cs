using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Networks;

/// <summary>
/// PyTorch state dicts of torchvision architectures (random weights, BatchNorm statistics from real images) import by
/// architecture name into the same network: same names and shapes, the same logits, and FGSM gives the same images.
/// </summary>
[TestClass]
public sealed class TorchVisionImportTests
{
    public TestContext TestContext { get; set; } = null!;
    private const int Classes = 10;

    /// <summary>Architecture, image side (64, or 75 for Inception v3) and batch of every row below.</summary>
    private static readonly (string Arch, int Side, int Batch)[] Exports =
    {
        ("resnet18", 64, 4), ("resnet50", 64, 4), ("mobilenet_v2", 64, 4), ("googlenet", 64, 4), ("inception_v3", 75, 2), ("vgg11", 64, 2), ("vgg16", 64, 2),
    };

    private static string? _folder;
    private static System.Diagnostics.Process? _exporter;

    /// <summary>
    /// One Python process exports every architecture in turn (one torch import), while the tests check the ones
    /// already written (each folder is complete once its info.json exists).
    /// </summary>
    private static string Exported(string architecture, TestContext context)
    {
        PythonReference.Require("torch, torchvision");
        if (_exporter is null)
        {
            _folder = TestData.TempFolder();
            string jobs = string.Join(" ", Exports.Select(e => $"{e.Arch}:{e.Side}:{e.Batch}"));
            var psi = new System.Diagnostics.ProcessStartInfo(PythonReference.Python,
                $"\"{PythonReference.Script("torchvision_reference.py")}\" \"{_folder}\" \"{TestData.Folder}\" {Classes} {jobs}")
            { RedirectStandardOutput = true, RedirectStandardError = true };
            _exporter = System.Diagnostics.Process.Start(psi)!;
            _exporter.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.WriteLine(e.Data); };
            _exporter.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine(e.Data); };
            _exporter.BeginOutputReadLine();
            _exporter.BeginErrorReadLine();
        }
        string dir = Path.Combine(_folder!, architecture);
        var deadline = DateTime.UtcNow.AddMinutes(5);
        while (!File.Exists(Path.Combine(dir, "info.json")))
        {
            if (_exporter.HasExited && !File.Exists(Path.Combine(dir, "info.json")))
                Assert.Fail($"torchvision_reference.py exited with {_exporter.ExitCode} before exporting {architecture} (its output is in the test log).");
            if (DateTime.UtcNow > deadline) Assert.Fail($"torchvision_reference.py did not export {architecture} within 5 minutes.");
            Thread.Sleep(100);
        }
        context.WriteLine(File.ReadAllText(Path.Combine(dir, "info.json")));
        return dir;
    }

    [ClassCleanup]
    public static void RemoveExports()
    {
        if (_exporter is { HasExited: false }) _exporter.Kill();
        _exporter?.Dispose();
        if (_folder is not null && Directory.Exists(_folder)) Directory.Delete(_folder, true);
    }

    [TestMethod]
    [DataRow("resnet18")]
    [DataRow("resnet50")]
    [DataRow("mobilenet_v2")]
    [DataRow("googlenet")]
    [DataRow("inception_v3")]
    [DataRow("vgg11")]
    [DataRow("vgg16")]
    public void StateDictImportsWithTorchVisionsNamesLogitsAndFgsm(string architecture)
    {
        var (_, side, batch) = Exports.Single(e => e.Arch == architecture);
        string dir = Exported(architecture, TestContext);
        var spec = new ModelSpec(ModelSpec.ParseArchitecture(architecture));
        var description = new ModelDescription(spec, Classes, 3, side, side) { InputRange = InputRange.ImageNet };
        using var scope = NewDisposeScope();
        using var model = ModelIO.Import(description, Path.Combine(dir, "state_dict.pt"));

        // Every name of torchvision's state dict but the training-only heads, and nothing else.
        var skipped = TorchVisionModels.TrainingOnlyPrefixes(spec);
        var theirs = File.ReadAllLines(Path.Combine(dir, "keys.txt")).Where(k => !skipped.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToHashSet();
        var ours = ModelIO.ParameterNames(model);
        Assert.IsTrue(theirs.SetEquals(ours), $"state-dict names differ: only torchvision's [{string.Join(", ", theirs.Except(ours).Take(6))}], only ours [{string.Join(", ", ours.Except(theirs).Take(6))}]");

        var x = tensor(PythonReference.ReadFloats(Path.Combine(dir, "input.bin")), new long[] { batch, 3, side, side });
        var y = tensor(File.ReadAllBytes(Path.Combine(dir, "labels.bin")).Chunk(8).Select(b => BitConverter.ToInt64(b)).ToArray());
        var expected = tensor(PythonReference.ReadFloats(Path.Combine(dir, "logits.bin")), new long[] { batch, Classes });
        Tensor logits;
        using (no_grad()) logits = model.call(x);
        double diff = (logits - expected).abs().max().item<float>(), scale = expected.abs().max().item<float>();
        TestContext.WriteLine($"{architecture}: max |logit difference| {diff:E2}, largest |logit| {scale:F4}, relative {diff / scale:E2}");
        Assert.IsTrue(diff <= 1e-5 * scale, $"{architecture}: logits differ from torchvision's by {diff} (largest logit {scale})");

        // FGSM at eps 16 with ImageNet normalisation (per-channel epsilon and clipping): the same images element-wise.
        var adversarial = Attacks.Fgsm(16, InputRange.ImageNet).Generate(model, x, y);
        var theirAdversarial = tensor(PythonReference.ReadFloats(Path.Combine(dir, "fgsm.bin")), new long[] { batch, 3, side, side });
        var gap = (adversarial - theirAdversarial).abs();
        long differing = gap.gt(1e-5).sum().item<long>();
        TestContext.WriteLine($"{architecture}: FGSM eps 16: max |difference| {gap.max().item<float>():E2}, {differing} of {gap.numel()} values differ by more than 1e-5");
        Assert.AreEqual(0L, differing, $"{architecture}: {differing} FGSM values differ from PyTorch's (largest by {gap.max().item<float>()})");
    }

    [TestMethod]
    public void ImportRefusesAStateDictOfAnotherArchitectureNamingTheDifferences()
    {
        string folder = TestData.TempFolder();
        try
        {
            string path = Path.Combine(folder, "resnet18.pt");
            using (var resnet18 = new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), Classes, 3, 32, 32).CreateModel())
                ModelIO.SavePyTorch(resnet18, path);
            var resnet34 = new ModelDescription(new ModelSpec(ModelArchitecture.ResNet34), Classes, 3, 32, 32);
            var e = Assert.Throws<InvalidDataException>(() => ModelIO.Import(resnet34, path));
            StringAssert.Contains(e.Message, "layer1.2.conv1.weight", "a block resnet34 has and resnet18 lacks is named");
            StringAssert.Contains(e.Message, "nothing was loaded");

            var moreClasses = new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), 20, 3, 32, 32);
            e = Assert.Throws<InvalidDataException>(() => ModelIO.Import(moreClasses, path));
            StringAssert.Contains(e.Message, "fc.weight is [10, 512] in the file, [20, 512] in the model");
        }
        finally { Directory.Delete(folder, true); }
    }

    [TestMethod]
    public void DescriptionsOfTorchVisionArchitecturesAreBoundedAndChecked()
    {
        foreach (var (name, architecture) in TorchVisionModels.ByTorchVisionName)
        {
            Assert.AreEqual(architecture, ModelSpec.ParseArchitecture(name), name);
            int side = TorchVisionModels.MinSide(architecture);
            var d = new ModelDescription(new ModelSpec(architecture), 1000, 3, side, side);
            d.Validate();
            Assert.IsTrue(d.EstimateParameterCount() is > 1_000_000 and < 200_000_000, $"{name}: {d.EstimateParameterCount()}");
        }
        // Exact up to the 1% margin: ResNet-18 with 1000 classes has 11,689,512 parameters plus 9,620 BatchNorm buffers.
        long resnet18 = new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), 1000, 3, 224, 224).EstimateParameterCount();
        Assert.IsTrue(resnet18 >= 11_699_132 && resnet18 <= 11_699_132 * 1.011, resnet18.ToString());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), 10, 1, 64, 64).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ModelDescription(new ModelSpec(ModelArchitecture.Vgg11), 10, 3, 16, 16).Validate());
        Assert.Throws<ArgumentOutOfRangeException>(() => new ModelDescription(new ModelSpec(ModelArchitecture.MobileNetV2, Rho: 0.5), 10, 3, 64, 64).Validate());
        var custom = Assert.Throws<ArgumentException>(() => new ModelDescription(new ModelSpec(ModelArchitecture.Custom), 10, 3, 64, 64).Validate());
        StringAssert.Contains(custom.Message, "cannot rebuild");
    }
}
