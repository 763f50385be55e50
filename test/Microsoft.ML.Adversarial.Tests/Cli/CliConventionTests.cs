using System.Text.RegularExpressions;
using SkiaSharp;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>One spelling per option across commands, honest help and progress, figures from evaluate (issue 14).</summary>
[TestClass]
public sealed class CliConventionTests
{
    public TestContext TestContext { get; set; } = null!;

    private static (int Code, string Out, string Err) Advml(string dir, params string[] args) => CliTests.Advml(dir, args);

    [TestMethod]
    public void HelpShowsEachDefaultOnceOneSpellingPerOptionAndEveryProfile()
    {
        string dir = TestData.TempFolder();
        foreach (var command in new[] { "train", "attack", "evaluate", "transfer", "reproduce", "import" })
        {
            var help = Advml(dir, command, "--help");
            Assert.AreEqual(0, help.Code, help.Err);
            // "default 1000 [default: 1000]": the description repeated the default System.CommandLine prints.
            foreach (var line in help.Out.Split('\n'))
                Assert.IsFalse(Regex.IsMatch(line, @"default:? ?(\S+?)[;,)]?\s.*\[default: \1\]"), $"{command}: default shown twice: {line.Trim()}");
            // The spellings every command shares; the old ones are hidden aliases.
            Assert.IsFalse(Regex.IsMatch(help.Out, @"--train-count|--batch(?![-\w])|(^|\s)-m[\s,]"), $"{command} --help shows an old spelling:\n{help.Out}");
            if (command != "import")
            {
                StringAssert.Contains(help.Out, "--seed", $"{command} takes --seed");
                StringAssert.Contains(help.Out, "--device", $"{command} takes --device");
            }
            if (command is "train" or "attack" or "evaluate" or "transfer")
            {
                StringAssert.Contains(help.Out, "--count", command);
                StringAssert.Contains(help.Out, "--batch-size", command);
            }
        }
        var reproduce = Advml(dir, "reproduce", "--help").Out;
        foreach (var profile in new[] { "smoke", "quick", "full" }) StringAssert.Contains(reproduce, profile);
        // reproduce takes --seed (it was rejected); a bad profile names every profile, before anything runs.
        var bad = Advml(dir, "reproduce", "--seed", "3", "--profile", "huge", "-o", "r");
        Assert.AreEqual(2, bad.Code, bad.Err);
        foreach (var profile in new[] { "smoke", "quick", "full" }) StringAssert.Contains(bad.Err, profile);
        Assert.AreEqual(1, bad.Err.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length, bad.Err);
    }

    [TestMethod]
    public void TrainTakesTheSharedSpellingsReportsProgressWithCountsAndEvaluateDrawsFigures()
    {
        string dir = TestData.TempFolder();
        var train = Advml(dir, "train", "-o", "m.advml", "--count", "200", "--batch-size", "50", "--k", "0", "--rho", "0.25", "--epochs", "1");
        Assert.AreEqual(0, train.Code, train.Err);
        TestContext.WriteLine(train.Out);
        StringAssert.Contains(train.Out, "1 epoch,");
        Assert.IsFalse(train.Out.Contains("1 epochs"), train.Out);
        // Output is not a terminal here: progress lines carry the counts, the epoch and an ETA, not just a percentage.
        var progress = train.Out.Split('\n').Where(l => l.StartsWith("training: steps ", StringComparison.Ordinal)).ToList();
        Assert.IsTrue(progress.Count >= 1, train.Out);
        Assert.IsTrue(progress.All(l => Regex.IsMatch(l, @"steps \d+/4 \(\d+%\)") && l.Contains("elapsed ") && (l.Contains("ETA ") || l.EndsWith("done"))), string.Join("\n", progress));
        Assert.IsTrue(progress.Any(l => l.Contains("epoch 1/1")), string.Join("\n", progress));
        // 200 images in batches of 50: 4 steps, so --batch-size reached the trainer.
        StringAssert.Contains(train.Out, "Done: 4 steps");
        var both = Advml(dir, "train", "-o", "x.advml", "--count", "200", "--train-count", "200", "--k", "0");
        Assert.AreEqual(2, both.Code);
        StringAssert.Contains(both.Err, "--train-count");

        var eval = Advml(dir, "evaluate", "--model", "m.advml", "--count", "50", "--methods", "fgsm", "--epsilons", "2,16", "-o", Path.Combine("sub", "eval.json"), "--figures");
        Assert.AreEqual(0, eval.Code, eval.Err);
        StringAssert.Contains(eval.Out, "Wilson 95%");
        StringAssert.Contains(eval.Out, "evaluating: images 50/50 (100%)");
        using var png = SKBitmap.Decode(Path.Combine(dir, "sub", "accuracy-vs-epsilon.png"));
        Assert.IsNotNull(png, "the figure decodes");
        Assert.AreEqual((900, 600), (png.Width, png.Height));
    }

    [TestMethod]
    public void AFailedAttackIntoAnExistingFolderRemovesWhatItCreatedButKeepsTheFolder()
    {
        string dir = TestData.TempFolder();
        Assert.AreEqual(0, Advml(dir, "train", "-o", "m.advml", "--count", "100", "--k", "0", "--rho", "0.25", "--max-steps", "1").Code);
        string output = Path.Combine(dir, "out");
        Directory.CreateDirectory(output);
        // A file where the class folder 'Bag' must go: the attack fails while writing, after other class folders were made.
        File.WriteAllText(Path.Combine(output, "Bag"), "mine");
        var attack = Advml(dir, "attack", "--model", "m.advml", "--method", "fgsm", "--count", "30", "-o", "out");
        Assert.AreNotEqual(0, attack.Code, attack.Out);
        TestContext.WriteLine(attack.Err);
        Assert.IsTrue(Directory.Exists(output), "the folder existed before the run: it stays");
        CollectionAssert.AreEquivalent(new[] { Path.Combine(output, "Bag") }, Directory.GetFileSystemEntries(output), "only what was there before remains");
        Assert.AreEqual("mine", File.ReadAllText(Path.Combine(output, "Bag")));
    }
}
