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

    /// <summary>
    /// Architecture, image side and batch of every row below: 64 (75 for Inception v3, 63 for AlexNet), and 32 with a
    /// batch of 2 for resnet101 and the VGGs added later, which keeps each export to seconds on 2 cores.
    /// </summary>
    private static readonly (string Arch, int Side, int Batch)[] Exports =
    {
        ("resnet18", 64, 4), ("resnet50", 64, 4), ("mobilenet_v2", 64, 4), ("googlenet", 64, 4), ("inception_v3", 75, 2), ("vgg11", 64, 2), ("vgg16", 64, 2),
        ("inception_v3_transform_input", 75, 2), ("resnet34", 64, 2), ("alexnet", 63, 2),
        ("resnet101", 32, 2), ("vgg11_bn", 32, 2), ("vgg13", 32, 2), ("vgg16_bn", 32, 2), ("vgg19", 32, 2),
    };

    /// <summary>
    /// The spec a row imports into: torchvision's name, or inception_v3_transform_input, Inception v3 with
    /// torchvision's transform_input (set by torchvision for its pretrained weights) as <see cref="ModelSpec.TransformInput"/>.
    /// </summary>
    private static ModelSpec SpecOf(string architecture) => architecture == "inception_v3_transform_input"
        ? new ModelSpec(ModelArchitecture.InceptionV3) { TransformInput = true }
        : new ModelSpec(ModelSpec.ParseArchitecture(architecture));

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
    [DataRow("inception_v3_transform_input")]
    [DataRow("resnet34")]
    [DataRow("alexnet")]
    [DataRow("resnet101")]
    [DataRow("vgg11_bn")]
    [DataRow("vgg13")]
    [DataRow("vgg16_bn")]
    [DataRow("vgg19")]
    public void StateDictImportsWithTorchVisionsNamesLogitsAndFgsm(string architecture)
    {
        var (_, side, batch) = Exports.Single(e => e.Arch == architecture);
        string dir = Exported(architecture, TestContext);
        // Each export is removed once checked (a VGG state dict is 0.5 GB; 15 of them would hold several GB until the class ends).
        using var removeExport = new DeletesFolder(dir);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var spec = SpecOf(architecture);
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
        // The plain path is PyTorch's computation (contiguous layout): signs must match exactly. The fast path's own
        // bounds are ComputePathTests'.
        var adversarial = AttackRegistry.Create("fgsm", new AttackOptions { Epsilon = 16, InputRange = InputRange.ImageNet, Compute = ComputeOptions.Plain }).Generate(model, x, y);
        var theirAdversarial = tensor(PythonReference.ReadFloats(Path.Combine(dir, "fgsm.bin")), new long[] { batch, 3, side, side });
        var gap = (adversarial - theirAdversarial).abs();
        long differing = gap.gt(1e-5).sum().item<long>();
        TestContext.WriteLine($"{architecture}: FGSM eps 16: max |difference| {gap.max().item<float>():E2}, {differing} of {gap.numel()} values differ by more than 1e-5");
        Assert.AreEqual(0L, differing, $"{architecture}: {differing} FGSM values differ from PyTorch's (largest by {gap.max().item<float>()})");

        if (spec.TransformInput)
        {
            // The same weights without transform_input score other logits: the flag is part of the network, not of the file.
            using var plain = ModelIO.Import(description with { Spec = spec with { TransformInput = false } }, Path.Combine(dir, "state_dict.pt"));
            Tensor plainLogits;
            using (no_grad()) plainLogits = plain.call(x);
            double plainDiff = (plainLogits - expected).abs().max().item<float>();
            Assert.IsTrue(plainDiff > 1e-3 * scale, $"without TransformInput the logits differ by only {plainDiff}");
        }
        TestContext.WriteLine($"{architecture}: import and checks in {watch.Elapsed.TotalSeconds:F1} s");
    }

    private sealed class DeletesFolder(string path) : IDisposable
    {
        public void Dispose()
        {
            if (Directory.Exists(path)) Directory.Delete(path, true);
        }
    }

    [TestMethod]
    public void TransformInputIsAnInceptionOptionThatSurvivesTheModelFile()
    {
        var spec = new ModelSpec(ModelArchitecture.InceptionV3) { TransformInput = true };
        Assert.IsTrue(ModelSpec.FromJson(spec.ToJson()).TransformInput, "stored in model.json");
        Assert.IsFalse(ModelSpec.FromJson(new ModelSpec(ModelArchitecture.InceptionV3).ToJson()).TransformInput);
        using (var model = (InceptionV3)spec.Create(Classes, (3, 75, 75)))
            Assert.IsTrue(model.TransformInput);
        StringAssert.Contains(spec.ToString(), "transform input");
        var other = Assert.Throws<ArgumentException>(() => (new ModelSpec(ModelArchitecture.ResNet18) { TransformInput = true }).Validate());
        StringAssert.Contains(other.Message, "TransformInput");
        var grey = Assert.Throws<ArgumentException>(() => spec.Create(Classes, (1, 75, 75)));
        StringAssert.Contains(grey.Message, "3 ImageNet-normalised channels");
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
