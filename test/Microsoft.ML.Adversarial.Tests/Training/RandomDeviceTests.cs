using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>
/// Issue 13, GPU training path: the trainer makes its generator on the batch's device, and libtorch rejects a CUDA
/// generator for a CPU draw. Every seeded draw now happens on the requested device after one check that the
/// generator lives there. These run on CPU: a CUDA <see cref="Device"/> is only a description until used, so the check
/// can be exercised without a GPU.
/// </summary>
[TestClass]
public sealed class RandomDeviceTests
{
    private static readonly Device Cuda0 = new(DeviceType.CUDA, 0);

    [TestMethod]
    public void EpsilonSamplingRejectsAGeneratorOnAnotherDeviceWithAClearMessage()
    {
        foreach (var distribution in new[] { EpsilonDistribution.Paper, EpsilonDistribution.Parse("uniform:0:16"), EpsilonDistribution.Fixed(8) })
        {
            using var generator = new Generator(1, CPU);
            var e = Assert.ThrowsExactly<ArgumentException>(() => distribution.Sample(4, generator, Cuda0), distribution.ToString());
            StringAssert.Contains(e.Message, "generator is on cpu");
            StringAssert.Contains(e.Message, "asked for on cuda:0");
            StringAssert.Contains(e.Message, "new Generator(seed, cuda:0)");
            StringAssert.Contains(e.Message, distribution.ToString());
        }
    }

    [TestMethod]
    public void SamplesLandOnTheRequestedDeviceFromTheGeneratorsStream()
    {
        using var scope = NewDisposeScope();
        foreach (var distribution in new[] { EpsilonDistribution.Paper, EpsilonDistribution.Parse("uniform:2:6"), EpsilonDistribution.Fixed(8) })
        {
            var a = distribution.Sample(64, new Generator(9, CPU), CPU);
            var b = distribution.Sample(64, new Generator(9, CPU), CPU);
            var global = distribution.Sample(64, null, CPU);
            foreach (var t in new[] { a, global })
            {
                Assert.AreEqual(DeviceType.CPU, t.device_type, distribution.ToString());
                Assert.AreEqual(ScalarType.Float32, t.dtype);
                CollectionAssert.AreEqual(new long[] { 64 }, t.shape);
            }
            Assert.IsTrue(a.equal(b).all().item<bool>(), $"{distribution}: the same seed must give the same epsilons");
        }
        // The draw uses the generator itself: the paper's |N(0, 8)| equals the folded normal drawn from the same seed
        // wherever no value needed redrawing (> 16).
        var paper = EpsilonDistribution.Paper.Sample(1000, new Generator(4, CPU), CPU);
        var direct = randn(1000, dtype: ScalarType.Float32, generator: new Generator(4, CPU)).mul(8.0).abs();
        var kept = direct <= 16.0;
        Assert.IsTrue(paper[kept].equal(direct[kept]).all().item<bool>());
    }

    [TestMethod]
    public void DeviceAgreementTreatsAnUnindexedDeviceAsItsDefaultIndex()
    {
        Assert.IsTrue(RandomDevice.Same(CPU, new Device(DeviceType.CPU)));
        Assert.IsTrue(RandomDevice.Same(new Device(DeviceType.CUDA), Cuda0));
        Assert.IsFalse(RandomDevice.Same(Cuda0, new Device(DeviceType.CUDA, 1)));
        Assert.IsFalse(RandomDevice.Same(CPU, Cuda0));
        using var cpuGenerator = new Generator(1, CPU);
        Assert.AreSame(CPU, RandomDevice.For(cpuGenerator, CPU, "test"));
        Assert.AreSame(Cuda0, RandomDevice.For(null, Cuda0, "test"), "the global generator may draw anywhere");
    }
}
