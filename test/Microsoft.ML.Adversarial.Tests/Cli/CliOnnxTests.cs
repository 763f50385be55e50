using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>
/// <c>advml evaluate</c> and <c>advml transfer</c> on an ONNX file that PyTorch exported at test time: a black box
/// scored through ML.NET's ApplyOnnxModel, attacked by Square and used as a transfer target.
/// </summary>
[TestClass]
public sealed class CliOnnxTests
{
    public TestContext TestContext { get; set; } = null!;

    private static string Export(string dir)
    {
        PythonReference.Require("torch");
        int rc = PythonReference.Run($"{PythonReference.Script("onnx_classifier.py")} {TestData.Folder} {Path.Combine(dir, "m.onnx")}", out var output);
        Assert.AreEqual(0, rc, output);
        return "m.onnx";
    }

    private static JsonElement Row(JsonElement report, string method, double epsilon) => report.GetProperty("Rows").EnumerateArray()
        .Single(r => r.GetProperty("Method").GetString() == method && (method == "clean" || r.GetProperty("Epsilon").GetDouble() == epsilon));

    [TestMethod]

    [TestCategory("Slow")]
    public void EvaluateScoresAnOnnxModelAsMLNetDoesAttacksItWithSquareAndRefusesGradientMethods()
    {
        string dir = TestData.TempFolder(), onnx = Export(dir);
        var run = CliTests.Advml(dir, "evaluate", "--model", onnx, "--methods", "square", "--epsilons", "16", "--count", "40", "-o", "r.json");
        TestContext.WriteLine(run.Out + run.Err);
        Assert.AreEqual(0, run.Code, run.Err);
        var report = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "r.json"))).RootElement;

        // The clean row is what ML.NET's ApplyOnnxModel gives on the same 40 class-balanced test images.
        var ml = new MLContext(seed: 1);
        var data = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: 40, subset: SubsetMode.Stratified, folder: TestData.Folder);
        var scored = ml.Transforms.CopyColumns("input", "Pixels").Append(ml.Transforms.ApplyOnnxModel("logits", "input", Path.Combine(dir, onnx))).Fit(data).Transform(data);
        var labels = TestData.ReadKeys(data);
        double accuracy = TestData.ReadVectors(scored, "logits").Zip(labels, (s, l) => Array.IndexOf(s, s.Max()) == l - 1 ? 1.0 : 0).Average();
        Assert.AreEqual(accuracy, Row(report, "clean", 0).GetProperty("Top1").GetDouble(), 1e-9);
        Assert.IsTrue(Row(report, "square", 16).GetProperty("Top1").GetDouble() < accuracy, "Square at eps 16 lowers the ONNX model's accuracy");
        Assert.IsTrue(report.GetProperty("BlackBoxQueries").GetInt64() > 40, "the report counts the images the model scored");
        StringAssert.Contains(run.Out, "images scored");

        // A gradient method is refused before any work, naming what runs; no report is written.
        var fgsm = CliTests.Advml(dir, "evaluate", "--model", onnx, "--methods", "fgsm", "--count", "40", "-o", "f.json");
        Assert.AreNotEqual(0, fgsm.Code);
        StringAssert.Contains(fgsm.Err + fgsm.Out, "needs gradients");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "f.json")));
        var classes = CliTests.Advml(dir, "evaluate", "--model", onnx, "--methods", "square", "--onnx-classes", "a,b,c", "--count", "40");
        Assert.AreNotEqual(0, classes.Code);
        StringAssert.Contains(classes.Err + classes.Out, "has 10");
    }

    [TestMethod]
    public void TransferUsesOnnxModelsAsTargetsOnly()
    {
        string dir = TestData.TempFolder(), onnx = Export(dir);
        var description = new ModelDescription(new ModelSpec(ModelArchitecture.SmallCnn, Rho: 0.5), 10, 1, 28, 28, FashionMnist.ClassNames.ToList());
        ModelIO.Save(TrainedModels.SmallCnn, description, Path.Combine(dir, "cnn.advml"));
        var run = CliTests.Advml(dir, "transfer", "--models", $"cnn=cnn.advml,onnx={onnx}", "--methods", "fgsm", "--epsilons", "16", "--count", "40", "-o", "t.json");
        TestContext.WriteLine(run.Out + run.Err);
        Assert.AreEqual(0, run.Code, run.Err);
        var rows = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "t.json"))).RootElement.GetProperty("Rows").EnumerateArray().ToList();
        CollectionAssert.AreEquivalent(new[] { "cnn->cnn", "cnn->onnx" }, rows.Select(r => r.GetProperty("Source").GetString() + "->" + r.GetProperty("Target").GetString()).ToList());
        var onnxRow = rows.Single(r => r.GetProperty("Target").GetString() == "onnx");
        Assert.AreEqual(40, onnxRow.GetProperty("Count").GetInt32());
        Assert.IsTrue(onnxRow.GetProperty("ErrorRate").GetDouble() > 0.2, "FGSM eps 16 from the CNN fools the ONNX model on some images");

        var onlyOnnx = CliTests.Advml(dir, "transfer", "--models", $"a={onnx},b={onnx}", "--methods", "fgsm", "--count", "40");
        Assert.AreNotEqual(0, onlyOnnx.Code);
        StringAssert.Contains(onlyOnnx.Err + onlyOnnx.Out, "no model with gradients");
    }
}
