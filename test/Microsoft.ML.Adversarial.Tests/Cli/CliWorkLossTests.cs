using System.Diagnostics;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Data;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>The CLI never loses or overwrites the user's work, and says what is wrong before the long work starts.</summary>
[TestClass]
public sealed class CliWorkLossTests
{
    public TestContext TestContext { get; set; } = null!;

    internal static (int Code, string Out, string Err) Advml(string workDir, IDictionary<string, string>? env, params string[] args)
    {
        using var p = Start(workDir, env, args);
        var err = p.StandardError.ReadToEndAsync();
        string output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, output, err.Result);
    }

    private static Process Start(string workDir, IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { WorkingDirectory = workDir, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(CliTests.ToolPath());
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        return Process.Start(psi)!;
    }

    /// <summary>An untrained SmallCnn saved as a model file: enough for everything but accuracy.</summary>
    private static string SaveModel(string path, IReadOnlyList<string>? classNames = null, int side = 28)
    {
        var spec = new ModelSpec(ModelArchitecture.SmallCnn, 0.25);
        TorchSharp.torch.manual_seed(1);
        using var model = spec.Create(10, (1, side, side));
        ModelIO.Save(model, new ModelDescription(spec, 10, 1, side, side, (classNames ?? FashionMnist.ClassNames).ToArray()), path);
        return path;
    }

    private static Dictionary<string, DateTime> Snapshot(string folder) =>
        Directory.GetFiles(folder, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.GetLastWriteTimeUtc);

    private void AssertOneLineError((int Code, string Out, string Err) r, params string[] expected)
    {
        TestContext.WriteLine($"-> {r.Code}: {r.Err}");
        Assert.AreNotEqual(0, r.Code, r.Out);
        Assert.AreEqual(1, r.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, $"expected one line on stderr, got:\n{r.Err}");
        foreach (var e in expected) StringAssert.Contains(r.Err, e, StringComparison.OrdinalIgnoreCase);
    }

    [TestMethod]
    public void ClassNamesFromAModelFileCannotMakeAttackWriteOutsideItsOutput()
    {
        string dir = TestData.TempFolder();
        SaveModel(Path.Combine(dir, "evil.advml"), FileWriteFailureTests.HostileClassNames);
        // The data names the same classes (classes are matched by name): an image folder written by the library, whose
        // class folders are the safe forms of the hostile names and read back as those classes.
        var fashion = TestData.Test(20);
        var pixels = new float[fashion.RowCount * fashion.ImageSize];
        for (int i = 0; i < fashion.RowCount; i++) fashion.CopyPixels(i, pixels.AsSpan(i * fashion.ImageSize, fashion.ImageSize));
        var labels = Enumerable.Range(0, fashion.RowCount).Select(i => fashion.GetLabel(i)).ToArray();
        ImageFolder.Save(ImageSet.FromFloats(pixels, labels, FileWriteFailureTests.HostileClassNames, fashion.ImageShape).View(), Path.Combine(dir, "data", "test"));
        var r = Advml(dir, null, "attack", "--model", "evil.advml", "--data", "data", "--grayscale", "--image-size", "28", "--method", "fgsm", "--count", "20",
            "-o", Path.Combine("out", "png"));
        Assert.AreEqual(0, r.Code, r.Err);

        string output = Path.Combine(dir, "out", "png");
        var pngs = Directory.GetFiles(Path.Combine(dir, "out"), "*.png", SearchOption.AllDirectories);
        Assert.AreEqual(20, Directory.GetFiles(dir, "*.png", SearchOption.AllDirectories).Length - Directory.GetFiles(Path.Combine(dir, "data"), "*.png", SearchOption.AllDirectories).Length,
            "no PNG is written anywhere but -o");
        Assert.AreEqual(20, pngs.Length);
        Assert.IsTrue(pngs.All(f => Path.GetDirectoryName(Path.GetDirectoryName(f)) == output), "every PNG is in a class folder inside -o: " + string.Join(", ", pngs));
        Assert.AreEqual(10, ImageFolder.Scan(output).Classes.Count, "ten classes give ten visible, distinct folders");
    }

    [TestMethod]
    public void AttackRefusesToReplaceImagesAndNeverWritesIntoItsInput()
    {
        string dir = TestData.TempFolder();
        string data = Path.Combine(dir, "data");
        ImageFolder.Save(TestData.Train(20).View(), Path.Combine(data, "train"));
        ImageFolder.Save(TestData.Test(20).View(), Path.Combine(data, "test"));
        SaveModel(Path.Combine(dir, "m.advml"));
        var before = Snapshot(data);
        string[] Attack(string output, params string[] more) =>
            new[] { "attack", "--model", "m.advml", "--method", "fgsm", "--data", "data", "--image-size", "28", "--grayscale", "-o", output }.Concat(more).ToArray();

        // The input split itself, a folder holding it, or a folder inside it: refused even with --overwrite.
        foreach (var output in new[] { Path.Combine("data", "test"), "data", Path.Combine("data", "test", "T-shirt_top", "adv") })
            AssertOneLineError(Advml(dir, null, Attack(output, "--overwrite")), "input");
        CollectionAssert.AreEquivalent(before, Snapshot(data), "the input images are untouched");

        // Earlier output: refused unless --overwrite. (Fashion-MNIST here: the CLI cannot decode image folders yet,
        // ScottPlot's SkiaSharp 3 replaces the 2.88 that ML.NET's image loader needs; the checks above run before loading.)
        string[] Again(int count, params string[] more) =>
            new[] { "attack", "--model", "m.advml", "--method", "fgsm", "--count", count.ToString(), "-o", "adv" }.Concat(more).ToArray();
        var fresh = Advml(dir, null, Again(30));
        Assert.AreEqual(0, fresh.Code, fresh.Err);
        var first = Snapshot(Path.Combine(dir, "adv"));
        AssertOneLineError(Advml(dir, null, Again(20, "--seed", "5")), "--overwrite");
        CollectionAssert.AreEquivalent(first, Snapshot(Path.Combine(dir, "adv")));
        // With --overwrite the folder holds the new run only: none of the earlier run's 30 images stays beside the new 20.
        File.WriteAllText(Path.Combine(dir, "adv", "Bag", "mine.png"), "a file this command did not write");
        var again = Advml(dir, null, Again(20, "--seed", "5", "--overwrite"));
        Assert.AreEqual(0, again.Code, again.Err);
        var now = Directory.GetFiles(Path.Combine(dir, "adv"), "*.png", SearchOption.AllDirectories);
        Assert.AreEqual(21, now.Length, "20 new images and the file the command did not write: " + string.Join(", ", now));
        Assert.IsTrue(now.All(f => !first.TryGetValue(f, out var t) || File.GetLastWriteTimeUtc(f) > t), "every image of the earlier run was replaced or removed");

        // The default data set (FASHION_MNIST_DIR) is an input too.
        string fashion = Path.Combine(dir, "fashion");
        Directory.CreateDirectory(fashion);
        foreach (var f in Directory.GetFiles(TestData.Folder, "t10k-*")) File.Copy(f, Path.Combine(fashion, Path.GetFileName(f)));
        var env = new Dictionary<string, string> { ["FASHION_MNIST_DIR"] = fashion };
        AssertOneLineError(Advml(dir, env, "attack", "--model", "m.advml", "--count", "10", "--format", "idx", "-o", "fashion", "--overwrite"), "input");
        Assert.AreEqual(Directory.GetFiles(TestData.Folder, "t10k-*").Length, Directory.GetFiles(fashion).Length, "nothing was written into the data set");
    }

    [TestMethod]
    public void AFailedAttackRemovesTheFoldersItCreated()
    {
        string dir = TestData.TempFolder();
        SaveModel(Path.Combine(dir, "m32.advml"), side: 32);
        // Fashion-MNIST is 28x28; the model takes 32x32: the attack fails after its output folder was prepared.
        AssertOneLineError(Advml(dir, null, "attack", "--model", "m32.advml", "--count", "10", "-o", Path.Combine("new", "deep", "out")), "(1, 28, 28)");
        Assert.IsFalse(Directory.Exists(Path.Combine(dir, "new")), "the folders the failed command created are gone");
    }

    [TestMethod]
    [DataRow("evaluate", "--methods", "fgsm,FGSM", "--methods")]
    [DataRow("evaluate", "--epsilons", "4,8,4", "--epsilons")]
    [DataRow("transfer", "--methods", "fgsm,fgsm", "--methods")]
    [DataRow("evaluate", "--batch-size", "0", "--batch-size")]
    [DataRow("evaluate", "--batch-size", "-5", "--batch-size")]
    [DataRow("attack", "--batch-size", "0", "--batch-size")]
    [DataRow("evaluate", "--count", "0", "--count")]
    [DataRow("attack", "--image-size", "4", "--image-size")]
    [DataRow("evaluate", "-o", "report.txt", ".json or .csv")]
    [DataRow("evaluate", "-o", "afile/eval.json", "afile")]
    [DataRow("transfer", "-o", "/proc/no-such-dir/t.csv", "/proc/no-such-dir")]
    public void EveryTypedValueIsCheckedBeforeTheModelIsLoaded(string command, string option, string value, string expected)
    {
        string dir = TestData.TempFolder();
        File.WriteAllText(Path.Combine(dir, "afile"), "a file, not a folder");
        // The model does not exist: an error about it would mean the option was checked only after loading.
        var args = command switch
        {
            "transfer" => new[] { "transfer", "--models", "a.advml,b.advml" },
            "attack" => new[] { "attack", "--model", "missing.advml", "-o", "out" },
            _ => new[] { command, "--model", "missing.advml" },
        };
        AssertOneLineError(Advml(dir, null, args.Concat(new[] { option, value }).ToArray()), expected, value);
        Assert.IsFalse(Directory.Exists(Path.Combine(dir, "out")));
    }

    [TestMethod]
    public void FashionMnistDirIsHonoured()
    {
        string dir = TestData.TempFolder();
        var env = new Dictionary<string, string> { ["FASHION_MNIST_DIR"] = "/nonexistent-advml-data" };
        AssertOneLineError(Advml(dir, env, "train", "-o", "x.advml", "--train-count", "64", "--rho", "0.25", "--k", "0", "--max-steps", "1"),
            "/nonexistent-advml-data", "FASHION_MNIST_DIR");
        Assert.IsFalse(File.Exists(Path.Combine(dir, "x.advml")));
    }

    [TestMethod]
    public void RetrainingIntoACheckpointFolderNeedsResumeOrOverwrite()
    {
        string dir = TestData.TempFolder();
        string[] Train(int steps, params string[] more) => new[]
        {
            "train", "-o", "m.advml", "--train-count", "320", "--rho", "0.25", "--k", "0", "--max-steps", steps.ToString(), "--checkpoint", "ck", "--checkpoint-every", "5",
        }.Concat(more).ToArray();
        long Step() => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "ck", "checkpoint", "state.json"))).RootElement.GetProperty("Step").GetInt64();

        var first = Advml(dir, null, Train(10));
        Assert.AreEqual(0, first.Code, first.Err);
        Assert.AreEqual(10, Step());
        byte[] model = File.ReadAllBytes(Path.Combine(dir, "m.advml"));

        AssertOneLineError(Advml(dir, null, Train(5)), "step 10", "--resume", "--overwrite");
        Assert.AreEqual(10, Step(), "the later checkpoint is kept");
        CollectionAssert.AreEqual(model, File.ReadAllBytes(Path.Combine(dir, "m.advml")));

        var over = Advml(dir, null, Train(5, "--overwrite"));
        Assert.AreEqual(0, over.Code, over.Err);
        Assert.AreEqual(5, Step());

        // Replacing an explicitly named model file is allowed, but only by a complete new model: a run that fails keeps the old one.
        model = File.ReadAllBytes(Path.Combine(dir, "m.advml"));
        var diverged = Advml(dir, null, "train", "-o", "m.advml", "--train-count", "320", "--rho", "0.25", "--k", "0", "--optimizer", "sgd", "--lr", "1e12", "--max-steps", "20");
        AssertOneLineError(diverged, "diverged");
        CollectionAssert.AreEqual(model, File.ReadAllBytes(Path.Combine(dir, "m.advml")));
    }

    [TestMethod]
    public void TrainOntoAFullDiskFailsBeforeTraining()
    {
        using var fs = Tmpfs.MountOrSkip(1024 * 1024);
        fs.FillLeaving(16 * 1024);
        string dir = TestData.TempFolder();
        var r = Advml(dir, null, "train", "-o", Path.Combine(fs.Root, "m.advml"), "--train-count", "320", "--rho", "0.25", "--k", "0", "--max-steps", "20");
        AssertOneLineError(r, fs.Root);
        Assert.IsFalse(r.Out.Contains("Training", StringComparison.Ordinal), "no training may start: " + r.Out);
        Assert.AreEqual(0, Directory.GetFiles(fs.Root).Count(f => !Path.GetFileName(f).StartsWith("filler-", StringComparison.Ordinal)), "no probe or temporary file stays");
    }

    [TestMethod]
    public void EvaluateOntoAFullDiskFailsBeforeEvaluating()
    {
        using var fs = Tmpfs.MountOrSkip(1024 * 1024);
        fs.Fill();
        string dir = TestData.TempFolder();
        SaveModel(Path.Combine(dir, "m.advml"));
        var r = Advml(dir, null, "evaluate", "--model", "m.advml", "--count", "50", "--methods", "fgsm", "--epsilons", "8", "-o", Path.Combine(fs.Root, "eval.json"));
        AssertOneLineError(r, fs.Root);
        Assert.IsFalse(r.Out.Contains("top-1", StringComparison.Ordinal), "no evaluation may run: " + r.Out);
    }

    [TestMethod]
    public void AModelWhoseFinalWriteFailsIsSavedWhereTheErrorSays()
    {
        using var fs = Tmpfs.MountOrSkip(4 * 1024 * 1024);
        string dir = TestData.TempFolder();
        using var p = Start(dir, null, "train", "-o", Path.Combine(fs.Root, "m.advml"), "--train-count", "1000", "--rho", "0.25", "--k", "16", "--epochs", "3");
        var err = p.StandardError.ReadToEndAsync();
        var started = new ManualResetEventSlim();
        var output = Task.Run(() =>
        {
            var text = new System.Text.StringBuilder();
            while (p.StandardOutput.ReadLine() is { } line)
            {
                text.AppendLine(line);
                if (line.Contains("Training", StringComparison.Ordinal)) started.Set();
            }
            started.Set();
            return text.ToString();
        });
        started.Wait(TimeSpan.FromMinutes(2));
        // The probe passed; now something else fills the disk while the model trains.
        fs.Fill();
        if (p.HasExited) Assert.Inconclusive("training finished before the disk could be filled");
        p.WaitForExit();
        string message = err.Result;
        TestContext.WriteLine(output.Result + message);

        Assert.AreNotEqual(0, p.ExitCode);
        StringAssert.Contains(message, Path.Combine(fs.Root, "m.advml"));
        var rescued = Regex.Matches(message, "'([^']+\\.advml)'").Select(m => m.Groups[1].Value).Where(File.Exists).ToList();
        Assert.AreEqual(1, rescued.Count, "the error names the file the trained model was saved to: " + message);
        try
        {
            var (model, description) = ModelIO.Load(rescued[0]);
            model.Dispose();
            Assert.AreEqual(10, description.Classes);
        }
        finally
        {
            File.Delete(rescued[0]);
        }
        Assert.AreEqual(0, Directory.GetFiles(fs.Root).Count(f => !Path.GetFileName(f).StartsWith("filler-", StringComparison.Ordinal)), "no temporary file stays");
    }
}
