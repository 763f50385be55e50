using System.IO.Compression;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Tests.Networks;

[TestClass]
public sealed class SmallResNetAndModelIOTests
{
    public TestContext TestContext { get; set; } = null!;

    private static Dictionary<string, Tensor> BatchNormStatistics(nn.Module m) =>
        m.state_dict().Where(p => p.Key.Contains("running_")).ToDictionary(p => p.Key, p => p.Value.clone());

    [TestMethod]
    public void AttacksLeaveBatchNormStatisticsAndTrainingModeAloneButTrainingUpdatesThem()
    {
        using var scope = NewDisposeScope();
        manual_seed(2);
        using var model = new SmallResNet(classes: 10, rho: 0.5);
        var x = rand(16, 3, 32, 32);
        var y = randint(0, 10, new long[] { 16 });
        model.train();
        var before = BatchNormStatistics(model);

        var adversarial = Attacks.Fgsm(8).Generate(model, x, y);

        Assert.IsTrue(model.training, "the attack must restore training mode");
        foreach (var (name, t) in BatchNormStatistics(model))
            Assert.IsTrue(t.equal(before[name]).all().item<bool>(), $"{name} changed while generating adversarial examples");
        Assert.IsTrue((adversarial - x).abs().max().item<float>() <= 8 / 255f + 1e-6);

        model.call(x);
        Assert.IsTrue(BatchNormStatistics(model).Any(p => !p.Value.equal(before[p.Key]).all().item<bool>()),
            "a training-mode forward pass must update the running statistics");
    }

    [TestMethod]
    public void SmallResNetHasTorchvisionStyleNamesAndDownsamplesBetweenStages()
    {
        using var model = new SmallResNet(classes: 7, rho: 1, blocksPerStage: 2);
        var keys = ModelIO.ParameterNames(model);
        foreach (var k in new[] { "conv1.weight", "bn1.running_var", "layer1.1.conv2.weight", "layer2.0.downsample.0.weight", "layer3.0.downsample.1.running_mean", "fc.bias" })
            CollectionAssert.Contains(keys.ToList(), k);
        Assert.IsFalse(keys.Any(k => k.StartsWith("layer1.0.downsample")), "the first stage keeps its width and needs no projection");
        using var _ = no_grad();
        model.eval();
        CollectionAssert.AreEqual(new long[] { 3, 7 }, model.call(rand(3, 3, 32, 32)).shape);
    }

    [TestMethod]
    public void ModelFileRoundTripRebuildsTheNetworkWithIdenticalOutputs()
    {
        using var scope = NewDisposeScope();
        string folder = TestData.TempFolder();
        manual_seed(4);
        var spec = new ModelSpec(ModelArchitecture.SmallResNet, Rho: 0.5, Activation: ActivationSpec.Parse("elu"));
        var description = new ModelDescription(spec, 10, 3, 32, 32, Enumerable.Range(0, 10).Select(i => $"c{i}").ToArray());
        using var model = description.CreateModel();
        model.train();
        model.call(rand(8, 3, 32, 32)); // non-default BatchNorm statistics
        model.eval();
        string path = Path.Combine(folder, "model.advml");
        ModelIO.Save(model, description, path);
        Assert.IsFalse(Directory.EnumerateFiles(folder).Any(f => f.Contains(".tmp")), "no temporary file may remain");

        var (loaded, loadedDescription) = ModelIO.Load(path);
        Assert.AreEqual(description.Spec, loadedDescription.Spec);
        CollectionAssert.AreEqual(description.ClassNames!.ToArray(), loadedDescription.ClassNames!.ToArray());
        Assert.IsInstanceOfType<SmallResNet>(loaded);
        var x = rand(4, 3, 32, 32);
        using (no_grad())
            Assert.IsTrue(model.call(x).equal(loaded.call(x)).all().item<bool>(), "loaded model gives different outputs");
        loaded.Dispose();
    }

    [TestMethod]
    public void TruncatedForeignAndNewerModelFilesAreRefusedWithAClearMessage()
    {
        string folder = TestData.TempFolder();
        var description = new ModelDescription(new ModelSpec(Rho: 0.25), 10, 1, 28, 28);
        using var model = description.CreateModel();
        string good = Path.Combine(folder, "good.advml");
        ModelIO.Save(model, description, good);

        string truncated = Path.Combine(folder, "truncated.advml");
        var bytes = File.ReadAllBytes(good);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length / 2)]);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(truncated));
        StringAssert.Contains(e.Message, "truncated.advml");

        string foreign = Path.Combine(folder, "foreign.zip");
        using (var zip = ZipFile.Open(foreign, ZipArchiveMode.Create))
            using (var w = new StreamWriter(zip.CreateEntry("readme.txt").Open())) w.Write("hello");
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(foreign));
        StringAssert.Contains(e.Message, "not a Microsoft.ML.Adversarial model file");

        string text = Path.Combine(folder, "notes.txt");
        File.WriteAllText(text, "not a model");
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(text));
        StringAssert.Contains(e.Message, "not a Microsoft.ML.Adversarial model file");

        // A file from a future version of the library: same layout, higher format number.
        string newer = Path.Combine(folder, "newer.advml");
        File.Copy(good, newer);
        using (var zip = ZipFile.Open(newer, ZipArchiveMode.Update))
        {
            var entry = zip.GetEntry("model.json")!;
            string json;
            using (var r = new StreamReader(entry.Open())) json = r.ReadToEnd();
            entry.Delete();
            using var w = new StreamWriter(zip.CreateEntry("model.json").Open());
            w.Write(json.Replace($"\"FormatVersion\": {ModelIO.FormatVersion}", "\"FormatVersion\": 99"));
        }
        e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.Load(newer));
        StringAssert.Contains(e.Message, "format 99");
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void PyTorchStateDictsImportAndWrongArchitecturesAreRefused()
    {
        using var scope = NewDisposeScope();
        string folder = TestData.TempFolder();
        manual_seed(9);
        using var source = new SmallCnn(rho: 0.25);
        string path = Path.Combine(folder, "weights.pt");
        ModelIO.SavePyTorch(source, path);
        Assert.AreEqual(ModelIO.WeightsFormat.PyTorch, ModelIO.DetectFormat(path));

        manual_seed(10);
        using var target = new SmallCnn(rho: 0.25);
        ModelIO.LoadWeights(target, path);
        foreach (var ((name, a), (_, b)) in source.named_parameters().Zip(target.named_parameters()))
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"{name} not imported");

        using var wider = new SmallCnn(rho: 0.5);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.LoadWeights(wider, path));
        StringAssert.Contains(e.Message, "weights.pt");
        StringAssert.Contains(e.Message, "conv1.weight is [8, 1, 3, 3] in the file, [16, 1, 3, 3] in the model");
        Assert.AreEqual(16, wider.named_parameters().First().parameter.shape[0], "a refused file must leave the model untouched");
        Directory.Delete(folder, true);
    }

    /// <summary>What torch.nn.DataParallel saves: the network under a child named "module".</summary>
    private sealed class DataParallelLike : Module<Tensor, Tensor>
    {
        private readonly Module<Tensor, Tensor> module;

        public DataParallelLike(Module<Tensor, Tensor> inner) : base("DataParallel")
        {
            module = inner;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => module.call(x);
    }

    [TestMethod]
    public void AStateDictSavedFromAWrapperNamesThePrefixToRemove()
    {
        // Issue 27: a state dict saved from DataParallel ("module.conv1.weight", ...) was refused listing every name as
        // missing, without saying that one prefix was the whole difference.
        using var scope = NewDisposeScope();
        string folder = TestData.TempFolder();
        string path = Path.Combine(folder, "ddp.pt");
        ModelIO.SavePyTorch(new DataParallelLike(new SmallCnn(rho: 0.25)), path);
        using var target = new SmallCnn(rho: 0.25);
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.LoadWeights(target, path));
        StringAssert.Contains(e.Message, "starts with 'module.'");
        StringAssert.Contains(e.Message, "model.module.state_dict()");
        // A file that does not fit for another reason says nothing of prefixes.
        using var wider = new SmallCnn(rho: 0.5);
        Assert.IsFalse(Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.LoadWeights(wider, path)).Message.Contains("starts with", StringComparison.Ordinal));
        Directory.Delete(folder, true);
    }

    [TestMethod]
    public void ANonContiguousTensorInAPyTorchStateDictIsNamedWithTheFixAndATruncatedFileIsAskedAbout()
    {
        // Issue 27: every failure to read a state dict said "Is the file complete?". A tensor saved as a view with other
        // strides (w.t() of a transposed layer, a slice) is something else: the message names it and the fix.
        PythonReference.Require("torch");
        using var scope = NewDisposeScope();
        string folder = TestData.TempFolder();
        string path = Path.Combine(folder, "weights.pt"), strided = Path.Combine(folder, "strided.pt"), truncated = Path.Combine(folder, "truncated.pt");
        ModelIO.SavePyTorch(new SmallCnn(rho: 0.25), path);
        string script = Path.Combine(folder, "stride.py");
        File.WriteAllText(script, """
            import sys, torch
            sd = torch.load(sys.argv[1])
            sd["fc1.weight"] = sd["fc1.weight"].t().contiguous().t()  # the same values, stored column by column
            assert not sd["fc1.weight"].is_contiguous()
            torch.save(sd, sys.argv[2])
            sd = torch.load(sys.argv[1])
            sd["fc2.bias"] = torch.cat([sd["fc2.bias"], sd["fc2.bias"]])[10:]  # contiguous, but the second half of its storage
            torch.save(sd, sys.argv[3])
            """);
        string sliced = Path.Combine(folder, "sliced.pt");
        Assert.AreEqual(0, PythonReference.Run($"\"{script}\" \"{path}\" \"{strided}\" \"{sliced}\"", out string output), output);

        using var target = new SmallCnn(rho: 0.25);
        var before = target.state_dict()["fc1.weight"].clone();
        var e = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.LoadWeights(target, strided));
        TestContext.WriteLine(e.Message);
        StringAssert.Contains(e.Message, "'fc1.weight'");
        StringAssert.Contains(e.Message, "not a contiguous tensor");
        StringAssert.Contains(e.Message, "v.contiguous()");
        Assert.IsFalse(e.Message.Contains("complete?", StringComparison.Ordinal), e.Message);
        Assert.IsTrue(before.equal(target.state_dict()["fc1.weight"]).all().item<bool>(), "a refused file must leave the model untouched");

        var slice = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.LoadWeights(target, sliced));
        TestContext.WriteLine(slice.Message);
        StringAssert.Contains(slice.Message, "'fc2.bias'");
        StringAssert.Contains(slice.Message, "storage offset 10");

        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(truncated, bytes[..(bytes.Length * 2 / 3)]);
        var t = Assert.ThrowsExactly<InvalidDataException>(() => ModelIO.LoadWeights(target, truncated));
        TestContext.WriteLine(t.Message);
        StringAssert.Contains(t.Message, "Is the file complete?");
    }
}
