using Microsoft.ML.Adversarial.Models;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.Networks;

/// <summary>
/// Every architecture the library builds is described once (issue 29): the facts other places read about it (its
/// parameter count, smallest side) are checked here against the network it builds.
/// </summary>
[TestClass]
public sealed class ArchitectureCatalogTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>
    /// The estimate is what a model file is checked against before its weights are read (the weights entry may be at
    /// most about 8 bytes a parameter, and a description may need at most <see cref="ModelDescription.MaxParameters"/>),
    /// so it must never be below the real count; and it must be an estimate of this network, not of another one:
    /// at most 5 % above the parameters and buffers of the network built from the same description.
    /// </summary>
    private const double Tolerance = 0.05;

    /// <summary>Every architecture at its smallest side (10 classes), plus the options that change the count.</summary>
    private static IEnumerable<ModelDescription> Cases()
    {
        foreach (var architecture in Architectures.Rebuildable)
        {
            int side = Math.Max(architecture.MinSide, 28);
            int channels = architecture.Channels ?? (architecture.MinSide > 28 ? 3 : 1);
            double rho = architecture.FromTorchVisionPackage ? 1 : 0.25;
            yield return new ModelDescription(new ModelSpec(architecture.Architecture, rho), 10, channels, side, side);
        }
        yield return new ModelDescription(new ModelSpec(ModelArchitecture.SmallCnn), 10, 3, 32, 32);
        yield return new ModelDescription(new ModelSpec(ModelArchitecture.SmallResNet, 0.5) { BlocksPerStage = 3 }, 10, 3, 32, 32);
        yield return new ModelDescription(new ModelSpec(ModelArchitecture.InceptionV3, 0.25) { Deeper = true, AuxLogits = true }, 10, 3, 75, 75);
        yield return new ModelDescription(new ModelSpec(ModelArchitecture.InceptionV3) { AuxLogits = true }, 1000, 3, 75, 75);
        yield return new ModelDescription(new ModelSpec(ModelArchitecture.ResNet18), 1000, 3, 32, 32);
    }

    [TestMethod]
    public void EstimatedParameterCountOfEveryArchitectureIsAnUpperBoundWithinFivePercentOfTheBuiltNetwork()
    {
        var wrong = new List<string>();
        foreach (var d in Cases())
        {
            long estimate = d.EstimateParameterCount();
            long real;
            using (var scope = NewDisposeScope())
            using (var model = d.CreateModel())
                real = model.state_dict().Values.Sum(t => t.numel());
            double ratio = (double)estimate / real;
            string line = $"{d.Spec} {d.Channels}x{d.Height}x{d.Width}, {d.Classes} classes: estimate {estimate:N0}, built {real:N0} ({ratio:F3})";
            TestContext.WriteLine(line);
            if (estimate < real || ratio > 1 + Tolerance) wrong.Add(line);
        }
        Assert.AreEqual(0, wrong.Count, "estimates below the real count or more than 5 % above it:\n" + string.Join("\n", wrong));
    }

    [TestMethod]
    public void EveryArchitectureHasOneDescriptorWhoseNamesParseBackToIt()
    {
        CollectionAssert.AreEqual(Enum.GetValues<ModelArchitecture>(), Architectures.All.Select(d => d.Architecture).ToArray(),
            "one descriptor per ModelArchitecture member, in the enum's order");
        var names = new Dictionary<string, ModelArchitecture>();
        foreach (var d in Architectures.Rebuildable)
            foreach (var name in d.Aliases.Append(d.Name).Append(d.TorchVisionName ?? d.Name).Distinct())
            {
                string key = name.Replace("_", "").Replace("-", "").ToLowerInvariant();
                Assert.IsTrue(!names.TryGetValue(key, out var other) || other == d.Architecture, $"'{name}' names both {other} and {d.Architecture}");
                names[key] = d.Architecture;
                Assert.AreEqual(d.Architecture, ModelSpec.ParseArchitecture(name), name);
            }
        // Custom is described (it scores and can be attacked) but cannot be built, parsed, saved or estimated.
        var custom = Architectures.Of(ModelArchitecture.Custom);
        Assert.IsFalse(custom.Rebuildable);
        Assert.ThrowsExactly<ArgumentException>(() => ModelSpec.ParseArchitecture("custom"));
        Assert.ThrowsExactly<NotSupportedException>(() => new ModelSpec(ModelArchitecture.Custom).Create(10, (3, 32, 32)));
        StringAssert.Contains(Assert.ThrowsExactly<ArgumentException>(() => ModelSpec.ParseArchitecture("resnet19")).Message, Architectures.NameList);
    }

    [TestMethod]
    public void EveryArchitectureBuildsAtItsSmallestSideAndRefusesOneBelow()
    {
        foreach (var d in Architectures.Rebuildable)
        {
            int channels = d.Channels ?? 3;
            double rho = d.FromTorchVisionPackage ? 1 : 0.25;
            var spec = new ModelSpec(d.Architecture, rho);
            using (var scope = NewDisposeScope())
            using (var model = spec.Create(10, (channels, d.MinSide, d.MinSide)))
            {
                model.eval();
                using var _ = no_grad();
                var logits = model.call(rand(1, channels, d.MinSide, d.MinSide));
                CollectionAssert.AreEqual(new long[] { 1, 10 }, logits.shape, d.Name);
            }
            if (d.MinSide > 1)
                Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new ModelDescription(spec, 10, channels, d.MinSide - 1, d.MinSide - 1).Validate(), d.Name);
        }
    }
}
