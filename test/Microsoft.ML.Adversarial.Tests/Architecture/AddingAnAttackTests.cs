using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Architecture;

/// <summary>
/// Issue 29: adding an attack is one new file plus one registry line. <see cref="Nudge"/> below is such a file: a class
/// over the shared base and the line that registers it; nothing else in the library learns of it, yet the registry,
/// the evaluators and the ML.NET transform run it with their settings.
/// </summary>
[TestClass]
public sealed class AddingAnAttackTests
{
    /// <summary>A tiny one-step attack: step l.l.'s formula written once more, under its own name.</summary>
    private sealed class Nudge(AttackOptions? options = null) : OneStepAttack(Method, options ?? new AttackOptions())
    {
        // The registry line.
        public static readonly AttackMethod Method = AttackRegistry.Register<AttackOptions>("test-nudge", "nudge", "X - eps sign(grad J(X, y_LL))", o => new Nudge(o));

        protected override Tensor Direction(AttackBatch b) => b.InputGradient(b.Clean, z => AttackBatch.CrossEntropy(z, AttackBatch.LeastLikely(z))).neg().sign();
    }

    [TestMethod]
    public void ANewAttackFileWithOneRegistryLineRunsEverywhere()
    {
        string name = Nudge.Method;
        var info = AttackRegistry.Describe(name);
        Assert.AreEqual("nudge", info.PaperName);
        Assert.IsTrue(info.IsOneStep, "the flags come from the class");
        Assert.IsFalse(info.RequiresLabels);
        CollectionAssert.Contains(AttackRegistry.Names.ToList(), name);
        Assert.AreEqual(Nudge.Method, AttackMethod.Parse("TEST-NUDGE"));

        // The same images as step l.l.'s: its direction is step l.l.'s, written here as a new class.
        var data = TestData.Test(16);
        var model = TrainedModels.SmallCnn;
        var (x, _) = data.ToTensors(0, 16);
        var mine = AttackRegistry.Create(name, 8).Generate(model, x);
        var stepLL = AttackRegistry.Create(AttackMethod.StepLL, 8).Generate(model, x);
        Assert.AreEqual(0.0, mine.sub(stepLL).abs().max().item<float>(), 1e-6);
        Assert.IsTrue(mine.sub(x).abs().max().item<float>() > 0, "the attack moved the images");

        // The evaluator runs it by name, with its one-step gradient reuse, beside a built-in method.
        var report = new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { name, "step-ll" }, Epsilons = new[] { 8.0 } }).Evaluate(model, data);
        Assert.AreEqual(report.Rows.Single(r => r.Method == "step-ll").Top1, report.Rows.Single(r => r.Method == name).Top1);

        // The ML.NET transform too, and its settings are refused when they mean nothing to the method.
        var ml = new MLContext(seed: 1);
        var classifier = ml.Transforms.ImageClassifier(model, data.ClassNames, data.ImageShape);
        var view = ml.Data.LoadFromImageSet(data);
        var attacked = TestData.ReadVectors(ml.Transforms.AdversarialAttack(classifier, new AdversarialAttackEstimator.Options { Method = name, Epsilon = 8 }).Fit(view).Transform(view), "Pixels");
        CollectionAssert.AreEqual(mine[0].flatten().data<float>().ToArray(), attacked[0]);
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.Transforms.AdversarialAttack(classifier, new AdversarialAttackEstimator.Options { Method = name, Iterations = 3 }));
    }
}
