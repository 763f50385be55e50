using System.Reflection;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.MLNet;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Architecture;

/// <summary>The layering and the rules that have one home (issue 12): each test names the defect it guards against.</summary>
[TestClass]
public sealed class SharedRulesTests
{
    [TestMethod]
    public void CoreAssemblyReferencesNoMLNetAssembly()
    {
        var core = typeof(Attack).Assembly;
        Assert.AreEqual("Microsoft.ML.Adversarial.Core", core.GetName().Name);
        var mlnet = core.GetReferencedAssemblies().Where(a => a.Name!.StartsWith("Microsoft.ML", StringComparison.Ordinal)).Select(a => a.Name).ToList();
        Assert.AreEqual(0, mlnet.Count, $"the core must build without ML.NET; it references {string.Join(", ", mlnet)}");
        // The adapter is where ML.NET lives, on top of the core.
        var adapter = typeof(ImageClassifierTransformer).Assembly.GetReferencedAssemblies().Select(a => a.Name).ToList();
        CollectionAssert.Contains(adapter, "Microsoft.ML.Adversarial.Core");
        CollectionAssert.Contains(adapter, "Microsoft.ML.Data");
    }

    /// <summary>Counts the passes that differentiate the input (the input requires grad), around a real network.</summary>
    private sealed class GradientPassCounter(nn.Module<Tensor, Tensor> inner) : nn.Module<Tensor, Tensor>("GradientPassCounter")
    {
        private readonly nn.Module<Tensor, Tensor> _inner = inner;
        public int GradientPasses, Passes;

        public override Tensor forward(Tensor x)
        {
            Passes++;
            if (x.requires_grad) GradientPasses++;
            return _inner.call(x);
        }
    }

    [TestMethod]
    public void RegistryFlagsDescribeWhatEachAttackDoes()
    {
        // Issue 29: this test compared the registry's flags with an instance built the way the registry builds them,
        // which could not fail. Now each flag is checked against what the attack does on a real network and batch.
        var (x, y) = TrainedModels.EvalBatch(8);
        var wrongLabels = y.add(HeldScalars.Full(1, 1, ScalarType.Int64, y.device)).remainder(10);
        foreach (var info in AttackRegistry.All.Where(i => !i.Name.StartsWith("test-", StringComparison.Ordinal)))
        {
            // An L2 radius of 8 pixel values is a few hundredths of one pixel's range over the image: FAB finds no
            // point that close and returns the clean images whatever the labels. 255 (1.0 on [0, 1]) is an L2 budget in use.
            double epsilon = info.Name.EndsWith("-l2", StringComparison.Ordinal) ? 255 : 8;
            Attack Make() => AttackRegistry.Create(info.Name, AttackMethods.AutoAttackTests.CiBudget(info.Name, new AttackOptions { Epsilon = epsilon, Seed = 3, Compute = ComputeOptions.Plain }));
            Assert.AreEqual(info.OptionsType, Make().Options.GetType(), $"{info.Name}: options type");

            // RequiresLabels: without labels it refuses to run.
            bool refused = false;
            try { Make().Generate(TrainedModels.SmallCnn, x); }
            catch (ArgumentException e) when (e.ParamName == "labels") { refused = true; }
            Assert.AreEqual(info.RequiresLabels, refused, $"{info.Name}: RequiresLabels");

            // UsesTrueLabel: other labels give other images.
            var withTrue = Make().Generate(TrainedModels.SmallCnn, x, y);
            bool readsLabels = !withTrue.eq(Make().Generate(TrainedModels.SmallCnn, x, wrongLabels)).all().item<bool>();
            Assert.AreEqual(info.UsesTrueLabel, readsLabels, $"{info.Name}: UsesTrueLabel");

            // NeedsGradients and IsOneStep: how many passes differentiate the input, and how many run at all (a one-step
            // method takes one direction, from at most one gradient, and scores the clean batch at most once more).
            var counter = new GradientPassCounter(TrainedModels.SmallCnn);
            Make().Generate(counter, x, y);
            Assert.AreEqual(info.NeedsGradients, counter.GradientPasses > 0, $"{info.Name}: NeedsGradients ({counter.GradientPasses} gradient passes)");
            Assert.AreEqual(info.IsOneStep, counter.GradientPasses <= 1 && counter.Passes <= 2, $"{info.Name}: IsOneStep ({counter.GradientPasses} gradient passes of {counter.Passes})");

            // IsRandomBaseline: the perturbation does not depend on the model at all.
            var other = new SmallCnn(rho: 0.25);
            var onOther = Make().Generate(other, x, y);
            bool modelFree = withTrue.eq(onOther).all().item<bool>();
            Assert.AreEqual(info.IsRandomBaseline, modelFree, $"{info.Name}: IsRandomBaseline");
        }
        // The facts the paper's analysis relies on.
        Assert.IsTrue(AttackRegistry.Describe("fgsm").RequiresLabels);
        Assert.IsFalse(AttackRegistry.Describe("step-ll").UsesTrueLabel);
        Assert.IsFalse(AttackRegistry.Describe("pgd-linf").RequiresLabels, "PGD falls back to the prediction without labels");
        Assert.IsTrue(AttackRegistry.Describe("pgd-linf").UsesTrueLabel, "PGD uses true labels when given");
    }

    [TestMethod]
    public void EverySharedAttackSettingSurvivesConversionToEachOptionsType()
    {
        var source = new AttackOptions();
        // Set every shared setting to a value other than its default, whatever settings exist now or are added later.
        foreach (var p in typeof(AttackOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
        {
            object value = p.PropertyType switch
            {
                var t when t == typeof(double) => 3.5,
                var t when t == typeof(bool) => !(bool)p.GetValue(source)!,
                var t when t == typeof(long?) => (long?)42,
                var t when t == typeof(InputRange) => InputRange.SymmetricUnit,
                var t when t == typeof(ComputeOptions) => ComputeOptions.BFloat16,
                var t when t == typeof(int) => 7,
                var t when t == typeof(IReadOnlyList<string>) => new[] { "layer" },
                var t => throw new AssertFailedException($"Test needs a non-default value for AttackOptions.{p.Name} of type {t.Name}."),
            };
            p.SetValue(source, value);
        }
        foreach (var converted in new AttackOptions[] { source.As<PgdOptions>(), source.As<IterativeAttackOptions>(), AttackRegistry.OptionsFor("pgd-l2", source) })
            foreach (var p in typeof(AttackOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite))
                Assert.AreEqual(p.GetValue(source), p.GetValue(converted), $"{converted.GetType().Name} dropped AttackOptions.{p.Name}");
        // The registry builds each method from such a conversion: the seed and range reach the attack.
        var pgd = AttackRegistry.Create("pgd-linf", source);
        Assert.AreEqual(42L, pgd.Options.Seed);
        Assert.AreSame(InputRange.SymmetricUnit, pgd.Options.InputRange);
    }

    [TestMethod]
    public void EvaluatorsRestoreTheModeOfEverySubmodule()
    {
        // A caller trains the network but keeps one BatchNorm frozen in evaluation mode (fine-tuning does this).
        torch.manual_seed(1);
        var model = new SmallResNet(classes: 10, rho: 0.25, inChannels: 1);
        model.train();
        var frozen = model.modules().OfType<TorchSharp.Modules.BatchNorm2d>().First();
        frozen.eval();
        var data = TestData.Test(16);

        new RobustnessEvaluator(new RobustnessOptions { Methods = new[] { "fgsm" }, Epsilons = new[] { 4.0 } }).Evaluate(model, data);
        Assert.IsTrue(model.training, "the model is back in training mode");
        Assert.IsFalse(frozen.training, "RobustnessEvaluator unfroze a BatchNorm the caller had put in evaluation mode");

        var models = new Dictionary<string, nn.Module<Tensor, Tensor>> { ["a"] = model };
        new TransferEvaluator(new TransferOptions { Methods = new[] { "fgsm" } }).Evaluate(models, models, data);
        Assert.IsTrue(model.training);
        Assert.IsFalse(frozen.training, "TransferEvaluator unfroze a BatchNorm the caller had put in evaluation mode");
    }

    [TestMethod]
    public void MLNetPgdNeedsNoLabelColumnAndUsesOneWhenPresent()
    {
        var ml = new MLContext(seed: 1);
        var images = TestData.Test(40);
        var classifier = Trained(ml, images);
        var withLabels = ml.Data.LoadFromImageSet(images);
        var withoutLabels = ml.Transforms.DropColumns("Label").Fit(withLabels).Transform(withLabels);
        var (x, y) = images.ToTensors(0, images.RowCount);

        var options = new AdversarialAttackEstimator.Options { Method = "pgd-linf", Epsilon = 8, Iterations = 3, Seed = 5 };
        var noLabel = TestData.ReadVectors(ml.Transforms.AdversarialAttack(classifier, options).Fit(withoutLabels).Transform(withoutLabels), "Pixels");
        var labelled = TestData.ReadVectors(ml.Transforms.AdversarialAttack(classifier, options).Fit(withLabels).Transform(withLabels), "Pixels");

        var pgdOptions = new PgdOptions { Epsilon = 8, Steps = 3, Seed = 5 };
        var expectedNoLabel = new Pgd(pgdOptions).Generate(classifier.Model, x).flatten(1);
        var expectedLabelled = new Pgd(pgdOptions).Generate(classifier.Model, x, y).flatten(1);
        for (int i = 0; i < images.RowCount; i++)
        {
            CollectionAssert.AreEqual(expectedNoLabel[i].data<float>().ToArray(), noLabel[i], $"row {i}: PGD without labels attacks the prediction");
            CollectionAssert.AreEqual(expectedLabelled[i].data<float>().ToArray(), labelled[i], $"row {i}: PGD with a label column attacks the true label");
        }
    }

    [TestMethod]
    public void MLNetIterationSettingsReachTheOptionsTypeEachMethodTakes()
    {
        var ml = new MLContext(seed: 1);
        var images = TestData.Test(20);
        var classifier = Trained(ml, images);
        var data = ml.Data.LoadFromImageSet(images);
        var pgd = ml.Transforms.AdversarialAttack(classifier, new AdversarialAttackEstimator.Options { Method = "pgd-l2", Iterations = 7, Alpha = 0.5 }).Fit(data).CreateAttack();
        var pgdOptions = Assert.IsInstanceOfType<PgdOptions>(pgd.Options);
        Assert.AreEqual((7, 0.5, PgdNorm.L2), (pgdOptions.Steps, pgdOptions.StepSize, pgdOptions.Norm));
        var iter = ml.Transforms.AdversarialAttack(classifier, new AdversarialAttackEstimator.Options { Method = "iter-ll", Iterations = 3, Alpha = 2 }).Fit(data).CreateAttack();
        var iterOptions = Assert.IsInstanceOfType<IterativeAttackOptions>(iter.Options);
        Assert.AreEqual((3, 2.0), (iterOptions.Iterations, iterOptions.Alpha));
    }

    [TestMethod]
    public void MLNetStepSettingsReachEveryMethodOrAreRefused()
    {
        // Issue 29: the transform's Iterations/Alpha were silently dropped for apgd-*, fab-t, square and autoattack.
        var ml = new MLContext(seed: 1);
        var images = TestData.Test(20);
        var classifier = Trained(ml, images);
        var data = ml.Data.LoadFromImageSet(images);
        Attack Made(string method, int? iterations, double? alpha) => ml.Transforms.AdversarialAttack(classifier,
            new AdversarialAttackEstimator.Options { Method = method, Iterations = iterations, Alpha = alpha }).Fit(data).CreateAttack();
        // What the step count means for each method, read from the options the attack actually runs with.
        var stepsOf = new Dictionary<Type, Func<AttackOptions, int?>>
        {
            [typeof(IterativeAttackOptions)] = o => ((IterativeAttackOptions)o).Iterations,
            [typeof(PgdOptions)] = o => ((PgdOptions)o).Steps,
            [typeof(ApgdOptions)] = o => ((ApgdOptions)o).Iterations,
            [typeof(FabOptions)] = o => ((FabOptions)o).Iterations,
            [typeof(SquareOptions)] = o => ((SquareOptions)o).Queries,
            [typeof(AutoAttackOptions)] = o => ((AutoAttackOptions)o).ApgdIterations == ((AutoAttackOptions)o).FabIterations ? ((AutoAttackOptions)o).ApgdIterations : -1,
        };
        foreach (var info in AttackRegistry.All)
        {
            if (stepsOf.TryGetValue(info.OptionsType, out var steps))
                Assert.AreEqual(7, steps(Made(info.Name, 7, null).Options), $"{info.Name}: Iterations = 7 did not reach its options");
            else
            {
                var e = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Made(info.Name, 7, null), $"{info.Name} takes no step count: refuse it, never drop it");
                StringAssert.Contains(e.Message, "Iterations");
                StringAssert.Contains(e.Message, info.Name);
            }
        }
        // A step size: the iterative methods and PGD take one; the adaptive ones (APGD, FAB, Square, AutoAttack) refuse it.
        Assert.AreEqual(0.5, ((IterativeAttackOptions)Made("iter-basic", null, 0.5).Options).Alpha);
        Assert.AreEqual(0.5, ((PgdOptions)Made("pgd-linf", null, 0.5).Options).StepSize);
        foreach (var method in new[] { "apgd-ce", "apgd-t-l2", "fab-t", "square", "autoattack", "fgsm" })
            StringAssert.Contains(Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Made(method, null, 0.5), method).Message, "Alpha");
    }

    private static ImageClassifierTransformer Trained(MLContext ml, ImageSet images) =>
        ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
        {
            Model = new ModelSpec(Rho: 0.25), AdversarialPerBatch = 0, MaxSteps = 3, Optimizer = Microsoft.ML.Adversarial.Training.OptimizerKind.Adam, LearningRate = 1e-3,
        }).Fit(ml.Data.LoadFromImageSet(images));
}
