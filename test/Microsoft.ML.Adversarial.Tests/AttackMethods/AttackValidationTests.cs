using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>Bad input gets an error that says what was wrong and how to fix it.</summary>
[TestClass]
public sealed class AttackValidationTests
{
    private static readonly nn.Module<Tensor, Tensor> Linear = nn.Sequential(nn.Flatten(), nn.Linear(4, 3));

    private static Tensor Images(long n = 2) => full(new long[] { n, 4 }, 0.5f);
    private static Tensor Labels(params long[] y) => tensor(y);

    [TestMethod]
    [DataRow(-1.0)]
    [DataRow(double.NaN)]
    [DataRow(double.PositiveInfinity)]
    [DataRow(300.0)]
    public void BadScalarEpsilonIsRejected(double eps)
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Attacks.Fgsm(eps).Generate(Linear, Images(), Labels(0, 1)));
        StringAssert.Contains(ex.Message, "pixel units");
    }

    [TestMethod]
    public void BadPerExampleEpsilonIsRejected()
    {
        var neg = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Attacks.StepLL().Generate(Linear, Images(), null, tensor(new[] { 1f, -2f })));
        StringAssert.Contains(neg.Message, "-2");
        var nan = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Attacks.StepLL().Generate(Linear, Images(), null, tensor(new[] { float.NaN, 2f })));
        StringAssert.Contains(nan.Message, "finite");
        var shape = Assert.ThrowsExactly<ArgumentException>(() => Attacks.StepLL().Generate(Linear, Images(), null, tensor(new[] { 1f, 2f, 3f })));
        StringAssert.Contains(shape.Message, "[2]");
    }

    [TestMethod]
    public void LabelsOutOfRangeNameTheValueAndTheClassCount()
    {
        var ex = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Attacks.Fgsm().Generate(Linear, Images(), Labels(0, 7)));
        StringAssert.Contains(ex.Message, "7");
        StringAssert.Contains(ex.Message, "3 classes");
        var neg = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => Attacks.IterBasic(2).Generate(Linear, Images(), Labels(-1, 0)));
        StringAssert.Contains(neg.Message, "-1");
    }

    [TestMethod]
    public void MissingOrMisshapenLabelsAreReported()
    {
        var missing = Assert.ThrowsExactly<ArgumentException>(() => Attacks.Fgsm().Generate(Linear, Images()));
        StringAssert.Contains(missing.Message, "'fgsm' needs the true labels");
        var shape = Assert.ThrowsExactly<ArgumentException>(() => Attacks.Fgsm().Generate(Linear, Images(), Labels(0, 1, 2)));
        StringAssert.Contains(shape.Message, "[2]");
        var floats = Assert.ThrowsExactly<ArgumentException>(() => Attacks.Fgsm().Generate(Linear, Images(), tensor(new[] { 0f, 1f })));
        StringAssert.Contains(floats.Message, "integer");
    }

    [TestMethod]
    public void ImagesOutsideTheDeclaredRangeAreRejectedWithTheFix()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => Attacks.StepLL().Generate(Linear, full(new long[] { 2, 4 }, 200f)));
        StringAssert.Contains(ex.Message, "[0, 1]");
        StringAssert.Contains(ex.Message, "InputRange.Pixels");
        // The same images are fine once the range is declared.
        using var adv = Attacks.StepLL(range: InputRange.Pixels).Generate(Linear, full(new long[] { 2, 4 }, 200f));
        Assert.AreEqual(16f, (adv - 200f).abs().max().item<float>(), 1e-3);

        var nan = Assert.ThrowsExactly<ArgumentException>(() => Attacks.StepLL().Generate(Linear, full(new long[] { 2, 4 }, float.NaN)));
        StringAssert.Contains(nan.Message, "NaN");
        var ints = Assert.ThrowsExactly<ArgumentException>(() => Attacks.StepLL().Generate(Linear, ones(new long[] { 2, 4 }, dtype: ScalarType.Int32)));
        StringAssert.Contains(ints.Message, "floating-point");
    }

    [TestMethod]
    public void ShapeMismatchWithTheModelIsReported()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => Attacks.StepLL().Generate(Linear, full(new long[] { 2, 5 }, 0.5f)));
        StringAssert.Contains(ex.Message, "[2, 5]");
        StringAssert.Contains(ex.Message, "shape");
        var channels = Assert.ThrowsExactly<ArgumentException>(() => Attacks.Fgsm(range: InputRange.ImageNet).Generate(Linear, full(new long[] { 2, 4 }, 0.1f), Labels(0, 1)));
        StringAssert.Contains(channels.Message, "3 channels");
    }

    [TestMethod]
    public void AModelWithoutAGradientPathIsReported()
    {
        var detaching = new Detaching();
        var ex = Assert.ThrowsExactly<InvalidOperationException>(() => Attacks.StepLL().Generate(detaching, Images()));
        StringAssert.Contains(ex.Message, "differentiable");
    }

    [TestMethod]
    public void UnknownMethodNamesListTheKnownOnes()
    {
        var ex = Assert.ThrowsExactly<ArgumentException>(() => AttackRegistry.Create("fgsn"));
        StringAssert.Contains(ex.Message, "'fgsn'");
        StringAssert.Contains(ex.Message, "step-ll");
        Assert.IsInstanceOfType<IterativeLeastLikely>(AttackRegistry.Create("ITER-LL"));
        Assert.AreEqual(8, AttackRegistry.Create("iter-basic", 8).Options.Epsilon);
    }

    [TestMethod]
    public void BadIterativeAndPgdOptionsAreRejected()
    {
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BasicIterative(new IterativeAttackOptions { Alpha = 0 }).Generate(Linear, Images(), Labels(0, 1)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new BasicIterative(new IterativeAttackOptions { Iterations = 0 }).Generate(Linear, Images(), Labels(0, 1)));
        Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Pgd(new PgdOptions { Steps = 0 }).Generate(Linear, Images(), Labels(0, 1)));
        var target = Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new Pgd(new PgdOptions { TargetClass = 5 }).Generate(Linear, Images(), Labels(0, 1)));
        StringAssert.Contains(target.Message, "3 classes");
    }

    private sealed class Detaching : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.Linear _fc = nn.Linear(4, 3);
        public Detaching() : base(nameof(Detaching)) => RegisterComponents();
        public override Tensor forward(Tensor x) => _fc.call(x.detach()).detach();
    }
}
