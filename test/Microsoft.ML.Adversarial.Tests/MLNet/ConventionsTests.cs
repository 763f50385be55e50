using System.Reflection;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.MLNet;

/// <summary>
/// Issue 14, "Defaults and shapes": typed attack methods with one name each, attacks and evaluators that take a fitted
/// chain, column defaults that follow the classifier, and the missing-backend message.
/// </summary>
[TestClass]
public sealed class ConventionsTests
{
    private const int Rows = 48;

    /// <summary>A seeded, untrained SmallCnn as the ML.NET classifier on "Pixels", and Fashion-MNIST rows whose pixels are in "Image".</summary>
    private static (MLContext Ml, ImageClassifierTransformer Classifier, IDataView Raw, IDataView Pixels) Setup(string pixelColumn = "Pixels")
    {
        var ml = new MLContext(seed: 1);
        manual_seed(5);
        var classifier = ml.Transforms.ImageClassifier(new SmallCnn(rho: 0.5), FashionMnist.ClassNames, (1, 28, 28),
            architecture: new ModelSpec(ModelArchitecture.SmallCnn, Rho: 0.5), pixelColumnName: pixelColumn);
        var images = TestData.Test(Rows);
        return (ml, classifier, new ImageSetDataView(images, pixelColumnName: "Image"), new ImageSetDataView(images, pixelColumnName: pixelColumn));
    }

    [TestMethod]
    public void EveryRegisteredMethodHasOneTypedMemberOfTheSameName()
    {
        var members = typeof(AttackMethod).GetFields(BindingFlags.Public | BindingFlags.Static).Where(f => f.FieldType == typeof(AttackMethod))
            .Select(f => ((AttackMethod)f.GetValue(null)!).Name).ToList();
        // Methods registered by tests (AddingAnAttackTests, named "test-...") live in the test assembly, not here.
        CollectionAssert.AreEquivalent(AttackRegistry.Names.Where(n => !n.StartsWith("test-", StringComparison.Ordinal)).ToList(), members, "one AttackMethod member per registry name, and no other");
        foreach (var paper in new[] { "fgsm", "step-ll", "step-rnd", "iter-basic", "iter-ll", "pgd-linf", "apgd-ce", "apgd-dlr", "apgd-t", "square", "autoattack" })
            CollectionAssert.Contains(members, paper);
        Assert.AreEqual(AttackMethod.StepLL, (AttackMethod)"STEP-LL", "names convert, any case, to the member");
        Assert.AreEqual("iter-basic", (string)AttackMethod.IterBasic);
        var e = Assert.ThrowsExactly<ArgumentException>(() => { AttackMethod m = "step-least-likely"; });
        StringAssert.Contains(e.Message, "step-ll", "an unknown name lists the known ones");
    }

    [TestMethod]
    public void TypedMethodStringAndNamedTransformGiveTheSamePixels()
    {
        var (ml, classifier, _, pixels) = Setup();
        var typed = TestData.ReadVectors(ml.Transforms.AdversarialAttack(classifier, AttackMethod.StepLL, 4).Fit(pixels).Transform(pixels), "Pixels");
        var byName = TestData.ReadVectors(ml.Transforms.AdversarialAttack(classifier, "step-ll", 4).Fit(pixels).Transform(pixels), "Pixels");
        var named = TestData.ReadVectors(ml.Transforms.StepLL(classifier, 4).Fit(pixels).Transform(pixels), "Pixels");
        var options = TestData.ReadVectors(ml.Transforms.AdversarialAttack(classifier, new AdversarialAttackEstimator.Options { Method = AttackMethod.StepLL, Epsilon = 4 })
            .Fit(pixels).Transform(pixels), "Pixels");
        var clean = TestData.ReadVectors(pixels, "Pixels");
        for (int i = 0; i < Rows; i++)
        {
            CollectionAssert.AreEqual(typed[i], byName[i]);
            CollectionAssert.AreEqual(typed[i], named[i]);
            CollectionAssert.AreEqual(typed[i], options[i]);
        }
        Assert.IsTrue(typed.Zip(clean).Any(p => !p.First.SequenceEqual(p.Second)), "the attack changed pixels");
        Assert.AreEqual(ml.Adversarial().Evaluate(classifier, pixels, AttackMethod.Fgsm, 8).MicroAccuracy,
            ml.Adversarial().Evaluate(classifier, pixels, "fgsm", 8).MicroAccuracy, "the evaluator takes either");
    }

    /// <summary>A fitted chain: steps that make "Pixels" from "Image" (nested in a chain of their own), the classifier, a step after it.</summary>
    private static TransformerChain<ITransformer> Chain(MLContext ml, ImageClassifierTransformer classifier, IDataView raw)
    {
        var prefix = new TransformerChain<ITransformer>(ml.Transforms.CopyColumns("Pixels", "Image").Fit(raw));
        var scored = classifier.Transform(prefix.Transform(raw));
        var suffix = ml.Transforms.Conversion.MapKeyToValue("PredictedClass", "PredictedLabel").Fit(scored);
        return new TransformerChain<ITransformer>(prefix, classifier, suffix);
    }

    [TestMethod]
    public void AttacksAndEvaluatorsTakeAFittedChainAndAttackThePixelsThatReachItsClassifier()
    {
        var (ml, classifier, raw, pixels) = Setup();
        var chain = Chain(ml, classifier, raw);
        Assert.AreSame(classifier, chain.FindImageClassifier());

        var fromChain = ml.Transforms.Fgsm(chain, epsilon: 8).Fit(raw);
        Assert.AreSame(classifier, fromChain.Source);
        var expected = TestData.ReadVectors(ml.Transforms.Fgsm(classifier, epsilon: 8).Fit(pixels).Transform(pixels), "Pixels");
        var actual = TestData.ReadVectors(fromChain.Transform(raw), "Pixels");
        for (int i = 0; i < Rows; i++) CollectionAssert.AreEqual(expected[i], actual[i], $"row {i}");

        // The prefix travels with the attack through ML.NET's save and load.
        string path = Path.Combine(TestData.TempFolder(), "attack.zip");
        ml.Model.Save(fromChain, raw.Schema, path);
        var loaded = ml.Model.Load(path, out _);
        var reloaded = TestData.ReadVectors(loaded.Transform(raw), "Pixels");
        for (int i = 0; i < Rows; i++) CollectionAssert.AreEqual(expected[i], reloaded[i], $"reloaded row {i}");

        var onChain = ml.Adversarial().Evaluate(chain, raw, AttackMethod.Fgsm, 8);
        var onClassifier = ml.Adversarial().Evaluate(classifier, pixels, AttackMethod.Fgsm, 8);
        Assert.AreEqual(onClassifier.MicroAccuracy, onChain.MicroAccuracy);
        Assert.AreEqual(ml.Adversarial().Evaluate(classifier, pixels, "clean").MicroAccuracy, ml.Adversarial().Evaluate(chain, raw, "clean").MicroAccuracy);
        var robust = ml.Adversarial().EvaluateRobustness(chain, raw, new Microsoft.ML.Adversarial.Evaluation.RobustnessOptions { Methods = new string[] { AttackMethod.StepLL }, Epsilons = new[] { 4.0 } });
        var direct = ml.Adversarial().EvaluateRobustness(classifier, pixels, new Microsoft.ML.Adversarial.Evaluation.RobustnessOptions { Methods = new string[] { AttackMethod.StepLL }, Epsilons = new[] { 4.0 } });
        Assert.AreEqual(direct.ToString(), robust.ToString());
    }

    [TestMethod]
    public void AChainWithNoClassifierOrTwoIsRefusedNamingTheFix()
    {
        var (ml, classifier, raw, _) = Setup();
        var copy = ml.Transforms.CopyColumns("Pixels", "Image").Fit(raw);
        var none = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.Fgsm(new TransformerChain<ITransformer>(copy), 8));
        StringAssert.Contains(none.Message, "no ImageClassifierTransformer");
        StringAssert.Contains(none.Message, "ColumnCopyingTransformer");
        var two = Assert.ThrowsExactly<ArgumentException>(() => ml.Transforms.StepLL(new TransformerChain<ITransformer>(copy, classifier, classifier), 8));
        StringAssert.Contains(two.Message, "2 ImageClassifierTransformers");
        StringAssert.Contains(two.Message, "ElementAt(1)");
    }

    [TestMethod]
    public void AttacksWriteTheClassifiersOwnPixelColumnByDefault()
    {
        // A classifier on ML.NET's "Features": the attack needs no column names to attack what the classifier reads.
        var (ml, classifier, _, features) = Setup(pixelColumn: "Features");
        var attack = ml.Transforms.Fgsm(classifier, epsilon: 8).Fit(features);
        Assert.AreEqual("Features", attack.OutputColumnName);
        Assert.AreEqual("Features", attack.InputColumnName);
        var attacked = TestData.ReadVectors(attack.Transform(features), "Features");
        var clean = TestData.ReadVectors(features, "Features");
        Assert.IsTrue(attacked.Zip(clean).All(p => p.First.Zip(p.Second).All(q => Math.Abs(q.First - q.Second) <= 8f / 255f + 1e-6f)), "inside the eps ball");
        Assert.IsTrue(attacked.Zip(clean).Any(p => !p.First.SequenceEqual(p.Second)));
    }

    [TestMethod]
    public void TrainingOnFeaturesWithoutNamingItSaysWhichOptionNamesIt()
    {
        var (ml, _, _, features) = Setup(pixelColumn: "Features");
        var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.AdversarialTraining().Fit(features));
        StringAssert.Contains(e.Message, "'Pixels' not found");
        StringAssert.Contains(e.Message, "featureColumnName: \"Features\"");
    }

    [TestMethod]
    public void AMissingNativeBackendIsReportedWithThePackageToAdd()
    {
        // The shape TorchSharp 0.107 gives when no libtorch package is referenced: its static constructor throws
        // NotSupportedException, which the runtime wraps in a TypeInitializationException for TorchSharp.torch.
        var inner = new NotSupportedException("This application or script uses TorchSharp but doesn't contain a reference to libtorch-cpu-linux-x64, Version=2.10.0.0.\n" +
            "Consider referencing one of the combination packages TorchSharp-cpu, TorchSharp-cuda-linux, TorchSharp-cuda-windows or call " +
            "System.Runtime.InteropServices.NativeLibrary.Load(path-to-LibTorchSharp.dll) explicitly.\nTrace from LoadNativeBackend:\n...");
        var e = new TypeInitializationException("TorchSharp.torch", inner);
        Assert.IsTrue(TorchBackend.IsMissingBackend(e));
        Assert.IsTrue(TorchBackend.IsMissingBackend(inner));
        Assert.IsFalse(TorchBackend.IsMissingBackend(new TypeInitializationException("Other.Type", inner)));
        Assert.IsFalse(TorchBackend.IsMissingBackend(new InvalidOperationException("x")));
        string message = TorchBackend.MissingBackendMessage(e);
        StringAssert.Contains(message, "TorchSharp-cpu");
        StringAssert.Contains(message, OperatingSystem.IsWindows() ? "TorchSharp-cuda-windows" : "TorchSharp-cuda-linux");
        StringAssert.Contains(message, "doesn't contain a reference to libtorch-cpu-linux-x64", "TorchSharp's own first line is kept");
        Assert.IsFalse(message.Contains("Trace from"), "one line of TorchSharp's text, not its trace");
        // The shape a console project referencing only the library gets (checked by hand, docs/reliability.md): the first
        // P/Invoke fails to find LibTorchSharp.
        var dll = new DllNotFoundException("Unable to load shared library 'LibTorchSharp' or one of its dependencies. In order to help diagnose loading problems, " +
            "consider using a tool like strace. If you're using glibc, consider setting the LD_DEBUG environment variable: \nlibLibTorchSharp.so: cannot open shared object file");
        Assert.IsTrue(TorchBackend.IsMissingBackend(dll));
        string dllMessage = TorchBackend.MissingBackendMessage(dll);
        StringAssert.Contains(dllMessage, "TorchSharp-cpu");
        StringAssert.EndsWith(dllMessage, "TorchSharp said: Unable to load shared library 'LibTorchSharp' or one of its dependencies.");
        TorchBackend.EnsureLoaded(); // this process has the backend: no exception
    }
}
