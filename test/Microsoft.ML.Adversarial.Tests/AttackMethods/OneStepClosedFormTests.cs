using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>On a linear classifier each one-step method must give exactly the perturbation its formula predicts.</summary>
[TestClass]
public sealed class OneStepClosedFormTests
{
    private const int N = 8, D = 6, K = 4;
    private const double Eps = 8; // pixel units; 8/255 keeps every input (in [0.3, 0.7]) away from the range's edges
    private static readonly LinearModel Model = new(K, D, seed: 3);
    private static readonly double[][] X = MakeInputs();
    private static readonly int[] Y = Enumerable.Range(0, N).Select(i => i % K).ToArray();

    private static double[][] MakeInputs()
    {
        var rng = new Random(11);
        return Enumerable.Range(0, N).Select(_ => Enumerable.Range(0, D).Select(_ => 0.3 + 0.4 * rng.NextDouble()).ToArray()).ToArray();
    }

    private static (Tensor X, Tensor Y) Inputs()
        => (torch.tensor(X.SelectMany(r => r.Select(v => (float)v)).ToArray(), new long[] { N, D }), torch.tensor(Y.Select(v => (long)v).ToArray()));

    /// <summary>Runs an attack and returns the perturbation in pixel units, row by row.</summary>
    private static double[][] Perturbation(Attack attack, bool withLabels = true)
    {
        using var scope = torch.NewDisposeScope();
        var (x, y) = Inputs();
        var adv = attack.Generate(Model.Module, x, withLabels ? y : null);
        var delta = ((adv - x) * 255).to(ScalarType.Float64).data<double>().ToArray();
        return Enumerable.Range(0, N).Select(i => delta.Skip(i * D).Take(D).ToArray()).ToArray();
    }

    private static void AssertRows(double[][] actual, Func<int, double[]> expected, double tolerance = 1e-3)
    {
        for (int i = 0; i < N; i++)
        {
            var e = expected(i);
            for (int d = 0; d < D; d++)
                Assert.AreEqual(e[d], actual[i][d], tolerance, $"row {i}, input {d}: expected {e[d]:F5}, got {actual[i][d]:F5}");
        }
    }

    private static double[] Scale(double[] v, double s) => v.Select(a => a * s).ToArray();
    private static double[] Sign(double[] v) => v.Select(a => (double)Math.Sign(a)).ToArray();
    private static int ArgMax(double[] v) => Array.IndexOf(v, v.Max());
    private static int ArgMin(double[] v) => Array.IndexOf(v, v.Min());

    [TestMethod]
    public void FgsmAddsEpsTimesSignOfTheTrueLabelGradient()
        => AssertRows(Perturbation(Attacks.Fgsm(Eps)), i => Scale(Sign(Model.CrossEntropyGradient(X[i], Y[i])), Eps));

    [TestMethod]
    public void FgsmPredUsesTheModelsPrediction()
        => AssertRows(Perturbation(Attacks.FgsmPredicted(Eps), withLabels: false),
            i => Scale(Sign(Model.CrossEntropyGradient(X[i], ArgMax(Model.Probabilities(X[i])))), Eps));

    [TestMethod]
    public void FastEntropyFollowsTheSignOfTheEntropyGradient()
        => AssertRows(Perturbation(Attacks.FastEntropy(Eps), withLabels: false), i => Scale(Sign(Model.EntropyGradient(X[i])), Eps));

    [TestMethod]
    public void FastGradL2HasTheGradientsDirectionAndNormEps()
    {
        var actual = Perturbation(Attacks.FastGradL2(Eps));
        AssertRows(actual, i =>
        {
            var g = Model.CrossEntropyGradient(X[i], Y[i]);
            double norm = Math.Sqrt(g.Sum(v => v * v));
            return Scale(g, Eps / norm);
        });
        foreach (var row in actual) Assert.AreEqual(Eps, Math.Sqrt(row.Sum(v => v * v)), 1e-3);
    }

    [TestMethod]
    public void FastGradLInfKeepsGradientProportionsWithLargestChangeEps()
    {
        var actual = Perturbation(Attacks.FastGradLInf(Eps));
        AssertRows(actual, i =>
        {
            var g = Model.CrossEntropyGradient(X[i], Y[i]);
            return Scale(g, Eps / g.Max(Math.Abs));
        });
        foreach (var row in actual)
        {
            Assert.AreEqual(Eps, row.Max(Math.Abs), 1e-3);
            Assert.IsTrue(row.Count(v => Math.Abs(Math.Abs(v) - Eps) < 1e-3) < D, "not a sign method: smaller gradient components give smaller changes");
        }
    }

    [TestMethod]
    public void StepLeastLikelyDescendsTheLossOfTheLeastLikelyClass()
        => AssertRows(Perturbation(Attacks.StepLL(Eps), withLabels: false),
            i => Scale(Sign(Model.CrossEntropyGradient(X[i], ArgMin(Model.Probabilities(X[i])))), -Eps));

    [TestMethod]
    public void StepTargetDescendsTheLossOfTheChosenClass()
        => AssertRows(Perturbation(Attacks.StepTarget(2, Eps), withLabels: false), i => Scale(Sign(Model.CrossEntropyGradient(X[i], 2)), -Eps));

    [TestMethod]
    public void StepRandomMovesTowardsSomeClassOtherThanTheTrueOne()
    {
        var actual = Perturbation(new StepRandom(new AttackOptions { Epsilon = Eps, Seed = 5 }));
        for (int i = 0; i < N; i++)
        {
            var matching = Enumerable.Range(0, K).Where(t =>
                Scale(Sign(Model.CrossEntropyGradient(X[i], t)), -Eps).Zip(actual[i], (e, a) => Math.Abs(e - a)).Max() < 1e-3).ToList();
            Assert.IsTrue(matching.Count > 0, $"row {i}: the step matches no target class");
            Assert.IsFalse(matching.All(t => t == Y[i]), $"row {i}: step rnd. must never target the true class");
        }
    }

    [TestMethod]
    public void RandomSignChangesEveryInputByExactlyEps()
    {
        foreach (var row in Perturbation(Attacks.RandomSign(Eps, seed: 1), withLabels: false))
            foreach (double v in row) Assert.AreEqual(Eps, Math.Abs(v), 1e-3);
    }

    [TestMethod]
    public void TruncatedNormalStaysWithinEpsWithStdHalfEps()
    {
        using var scope = torch.NewDisposeScope();
        var x = torch.full(new long[] { 64, 1, 28, 28 }, 0.5f);
        var attack = new TruncatedNormalNoise(new AttackOptions { Epsilon = Eps, Seed = 2 });
        var model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10));
        var delta = (attack.Generate(model, x) - x) * 255;
        Assert.IsTrue(delta.abs().max().item<float>() <= Eps + 1e-3);
        // A N(0, 0.5) truncated at +-1 (2 std) has std 0.5 * 0.8796 = 0.440; times eps.
        double std = delta.std().item<float>();
        Assert.AreEqual(0.440 * Eps, std, 0.02 * Eps);
    }

    [TestMethod]
    public void EpsilonIsConvertedToTheModelsInputRange()
    {
        // The same linear model fed [-1, 1]: eps 8 pixel values is 16/255 in model units, with the same sign pattern.
        using var scope = torch.NewDisposeScope();
        var (x, y) = Inputs();
        var adv = Attacks.Fgsm(Eps, InputRange.SymmetricUnit).Generate(Model.Module, x, y);
        var delta = (adv - x).to(ScalarType.Float64).data<double>().ToArray();
        for (int i = 0; i < N; i++)
        {
            var expected = Sign(Model.CrossEntropyGradient(X[i], Y[i]));
            for (int d = 0; d < D; d++) Assert.AreEqual(expected[d] * 2 * Eps / 255, delta[i * D + d], 1e-5);
        }
    }

    [TestMethod]
    public void PerChannelNormalisationScalesEpsPerChannelAndClipsToEachChannelsRange()
    {
        using var scope = torch.NewDisposeScope();
        var range = InputRange.ImageNet;
        var model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5));
        // Clean images at pixel value 128 in every channel, expressed in normalised units.
        var pixels = torch.full(new long[] { 2, 3, 4, 4 }, 128f / 255f);
        var mean = torch.tensor(new[] { 0.485f, 0.456f, 0.406f }).view(1, 3, 1, 1);
        var std = torch.tensor(new[] { 0.229f, 0.224f, 0.225f }).view(1, 3, 1, 1);
        var x = (pixels - mean) / std;
        var adv = Attacks.Fgsm(Eps, range).Generate(model, x, torch.tensor(new long[] { 0, 1 }));
        // Back in pixel units every change is +-eps.
        var deltaPixels = ((adv * std + mean) - pixels) * 255;
        Assert.AreEqual(Eps, deltaPixels.abs().max().item<float>(), 1e-3);
        Assert.AreEqual(Eps, deltaPixels.abs().min().item<float>(), 1e-3);

        // Near the edge of the range the result is clipped per channel.
        var bright = (torch.full(new long[] { 1, 3, 4, 4 }, 250f / 255f) - mean) / std;
        var advBright = Attacks.FgsmPredicted(Eps, range).Generate(model, bright);
        var back = (advBright * std + mean) * 255;
        Assert.IsTrue(back.max().item<float>() <= 255 + 1e-3);
    }
}
