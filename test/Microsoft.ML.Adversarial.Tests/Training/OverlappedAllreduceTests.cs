using System.Diagnostics;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Tests.Cli;
using Microsoft.ML.Adversarial.Training;
using Microsoft.ML.Adversarial.Training.Distributed;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>
/// Issue 30: the gradient allreduce in buckets, overlapped with the backward pass (<see cref="GradientBuckets"/>,
/// <see cref="BackwardReadiness"/>). In one process with a stand-in for the other ranks: the markers fire only once
/// their parameters' gradients are final, overlap on and off give the same bits, a bucket smaller than a parameter
/// holds it alone, a parameter without a gradient keeps none unless another rank has one. Under <c>mpirun -np 2</c>:
/// 2 ranks with overlap equal 1 rank, and overlap on, off and one buffer give the same weights bit for bit.
/// </summary>
[TestClass]
public sealed class OverlappedAllreduceTests
{
    public TestContext TestContext { get; set; } = null!;

    /// <summary>A network with a layer called twice, one computed but unused by the loss, and one never called.</summary>
    private sealed class Tricky : Module<Tensor, Tensor>
    {
        private readonly Linear first = Linear(8, 16);
        private readonly Linear shared = Linear(16, 16);
        private readonly Linear last = Linear(16, 4);
        private readonly Linear dead = Linear(16, 16);
        private readonly Linear unused = Linear(16, 16);

        public Tricky() : base(nameof(Tricky)) => RegisterComponents();

        public Parameter DeadWeight => dead.weight!;
        public IEnumerable<Parameter> NoGradient => dead.parameters().Concat(unused.parameters());

        public override Tensor forward(Tensor x)
        {
            var h = functional.relu(first.call(x));
            h = functional.relu(shared.call(h));
            _ = dead.call(h); // computed, not in the loss: no gradient
            h = functional.relu(shared.call(h)); // the same layer again: final only after both calls' backward
            return last.call(h);
        }
    }

    private static (Module<Tensor, Tensor> Model, Func<(Tensor X, Tensor Y)> Batch)[] Networks()
    {
        manual_seed(3);
        return new (Module<Tensor, Tensor>, Func<(Tensor, Tensor)>)[]
        {
            (new SmallCnn(rho: 0.5), () => (rand(4, 1, 28, 28), randint(10, 4))),
            (new SmallResNet(rho: 0.25, inChannels: 3), () => (rand(4, 3, 16, 16), randint(10, 4))),
            (new Tricky(), () => (rand(4, 8), randint(4, 4))),
            (new Models.InceptionV3(classes: 10, rho: 0.25, auxLogits: false, dropout: 0), () => (rand(2, 3, 75, 75), randint(10, 2))),
        };
    }

    [TestMethod]
    public void MarkersFireAfterTheirParametersGradientsAreFinal()
    {
        foreach (var (model, batch) in Networks())
            using (model)
            using (var scope = NewDisposeScope())
            {
                model.train();
                // Every parameter a bucket alone; no other rank (the sum is the buffer itself).
                using var buckets = new GradientBuckets(model.parameters(), 1e-9, 1, _ => { }, overlap: true);
                buckets.Watch(model);
                bool backwardDone = false;
                var seen = new List<(int Parameter, Tensor? Gradient, bool Early)>();
                buckets.BucketLaunched = b =>
                {
                    var bucket = buckets.Buckets[b];
                    for (int i = bucket.First; i < bucket.End; i++) seen.Add((i, buckets.Parameters[i].grad?.clone(), !backwardDone));
                };
                var (x, y) = batch();
                buckets.BeginStep(watchBackward: true);
                var loss = functional.cross_entropy(model.call(x), y);
                buckets.EndForward();
                loss.backward();
                backwardDone = true;
                // The gradients at the end of the backward pass, before Finish copies the means back.
                var final = buckets.Parameters.Select(p => p.grad?.clone()).ToArray();
                buckets.Finish();

                Assert.AreEqual(buckets.Parameters.Count, seen.Count, "every parameter's bucket is handed over once");
                int early = 0;
                foreach (var (i, atLaunch, isEarly) in seen)
                {
                    string name = $"{model.GetType().Name} parameter {i} of the bucket order ({string.Join("x", buckets.Parameters[i].shape)})";
                    Assert.AreEqual(final[i] is null, atLaunch is null, $"{name}: had a gradient at hand-over: {atLaunch is not null}, at the end: {final[i] is not null}");
                    if (atLaunch is not null) Assert.IsTrue(atLaunch.contiguous().bytes.SequenceEqual(final[i]!.contiguous().bytes), $"{name} changed after its bucket was handed over (early: {isEarly})");
                    if (isEarly) early++;
                }
                TestContext.WriteLine($"{model.GetType().Name}: {early} of {seen.Count} parameters handed over during the backward pass");
                Assert.IsTrue(early > 0, $"{model.GetType().Name}: no bucket started during the backward pass");
                if (model is Tricky tricky)
                    foreach (var p in tricky.NoGradient) Assert.IsNull(p.grad, "a parameter no rank has a gradient for keeps none");
            }
    }

    /// <summary>A stand-in for one other rank: adds its gradient (a fixed pattern) and its presence (1) to each bucket.</summary>
    private static FloatAllreduce OtherRank(Func<GradientBuckets> buckets, Func<int, bool>? hasGradient = null)
    {
        int call = 0;
        return span =>
        {
            var g = buckets();
            var bucket = g.Buckets[call++ % g.Buckets.Count];
            for (int i = bucket.First; i < bucket.End; i++)
            {
                if (hasGradient?.Invoke(i) == false) continue;
                long start = g.OffsetOf(i) - bucket.Offset;
                long n = g.Parameters[i].numel();
                for (long j = 0; j < n; j++) span[(int)(start + j)] += 0.001f * ((j % 7) - 3);
                span[(int)(g.PresenceOf(i) - bucket.Offset)] += 1;
            }
        };
    }

    private static byte[][] TrainSteps(double bucketMb, bool overlap, int steps)
    {
        using var scope = NewDisposeScope();
        manual_seed(11);
        using var model = new SmallResNet(rho: 0.25, inChannels: 3);
        model.train();
        var optimizer = new HeldScalarSgd(model.parameters(), 0.05, 0.9, 0);
        GradientBuckets? self = null;
        using var buckets = self = new GradientBuckets(model.parameters(), bucketMb, 2, OtherRank(() => self!), overlap);
        buckets.Watch(model);
        for (int s = 0; s < steps; s++)
        {
            manual_seed(100 + s);
            var x = rand(4, 3, 16, 16);
            var y = randint(10, 4);
            optimizer.zero_grad();
            buckets.BeginStep(watchBackward: true);
            var loss = functional.cross_entropy(model.call(x), y);
            buckets.EndForward();
            loss.backward();
            buckets.Finish();
            optimizer.step();
        }
        return model.parameters().Select(p => p.detach().contiguous().bytes.ToArray()).ToArray();
    }

    [TestMethod]
    public void OverlapOnAndOffGiveTheSameBits()
    {
        var reference = TrainSteps(0.01, overlap: false, steps: 3);
        foreach (var (mb, overlap) in new[] { (0.01, true), (0.0, false), (1e-9, true), (4.0, true) })
        {
            var other = TrainSteps(mb, overlap, steps: 3);
            for (int i = 0; i < reference.Length; i++)
                CollectionAssert.AreEqual(reference[i], other[i], $"parameter {i} differs with {mb} MB buckets, overlap {overlap}");
        }
    }

    [TestMethod]
    public void ABucketSmallerThanOneParameterHoldsItAlone()
    {
        using var model = new SmallCnn(rho: 0.5);
        var parameters = model.parameters().ToList();
        var sizes = Enumerable.Reverse(parameters).Select(p => p.numel()).ToArray();
        using (var tiny = new GradientBuckets(parameters, 1e-9, 2, _ => { }, overlap: false))
        {
            Assert.AreEqual(parameters.Count, tiny.Buckets.Count);
            for (int b = 0; b < sizes.Length; b++)
            {
                Assert.AreEqual((b, b + 1), (tiny.Buckets[b].First, tiny.Buckets[b].End));
                Assert.AreEqual(sizes[b] + 1, tiny.Buckets[b].Length, "the gradient and its presence slot");
            }
            Assert.AreSame(parameters[^1], tiny.Parameters[0], "the last registered parameter (the last layer's) comes first");
        }
        using (var one = new GradientBuckets(parameters, 0, 2, _ => { }, overlap: false))
        {
            Assert.AreEqual(1, one.Buckets.Count);
            Assert.AreEqual(sizes.Sum() + sizes.Length, one.Buckets[0].Length);
        }
        // 0.05 MB = 12,500 floats: fc2 and fc1 (over 12,500 with fc1's weight) fill the first bucket, the convolutions the second.
        using var some = new GradientBuckets(parameters, 0.05, 2, _ => { }, overlap: false);
        Assert.AreEqual(2, some.Buckets.Count);
        Assert.AreEqual(4, some.Buckets[0].End);
        // And a step with buckets smaller than every parameter trains as the others do (OverlapOnAndOffGiveTheSameBits, 1e-9 MB).
    }

    [TestMethod]
    public void AParameterWithoutAGradientKeepsNoneUnlessAnotherRankHasOne()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        using var model = new Tricky();
        var deadWeight = model.DeadWeight;
        GradientBuckets? self = null;
        // The other rank has a gradient for every parameter but the never-called layer's (and the dead layer's bias).
        var noneAnywhere = model.NoGradient.Where(p => !ReferenceEquals(p, deadWeight)).ToList();
        using var buckets = self = new GradientBuckets(model.parameters(), 1e-9, 2,
            OtherRank(() => self!, i => !noneAnywhere.Any(p => ReferenceEquals(p, self!.Parameters[i]))), overlap: true);
        buckets.Watch(model);
        var x = rand(4, 8);
        var y = randint(4, 4);
        buckets.BeginStep(watchBackward: true);
        var loss = functional.cross_entropy(model.call(x), y);
        buckets.EndForward();
        loss.backward();
        var mine = buckets.Parameters.Select(p => p.grad?.clone()).ToArray();
        buckets.Finish();
        for (int i = 0; i < buckets.Parameters.Count; i++)
        {
            var p = buckets.Parameters[i];
            if (noneAnywhere.Any(q => ReferenceEquals(q, p)))
            {
                Assert.IsNull(p.grad, $"parameter {i}: no rank has a gradient, so it keeps none (the optimiser skips it, as in one process)");
                continue;
            }
            Assert.IsNotNull(p.grad, $"parameter {i}");
            var pattern = arange(p.numel()).remainder(7).sub(3).to(ScalarType.Float32).mul(0.001f).view(p.shape);
            var expected = ((mine[i] ?? zeros_like(p)) + pattern) / 2;
            Assert.IsTrue(p.grad.allclose(expected, rtol: 0, atol: 1e-7), $"parameter {i}: the mean of this rank's gradient (or zeros) and the other's");
        }
        Assert.IsNull(mine[buckets.Parameters.ToList().FindIndex(p => ReferenceEquals(p, deadWeight))], "this rank has no gradient for the dead layer");
    }

    // ---- Two ranks under mpirun (the CLI, as users run it) ----

    private static readonly string[] Run =
    {
        "train", "--count", "640", "--arch", "smallcnn", "--rho", "0.5", "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05", "--momentum", "0.9",
        "--k", "16", "--method", "step-ll", "--epsilon", "fixed:8", "--max-steps", "20",
    };

    private static string RequireMpirun()
    {
        foreach (var name in new[] { "mpiexec.mpich", "mpirun.mpich", "mpiexec.hydra", "mpirun" })
            foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
                if (File.Exists(Path.Combine(dir, name))) return Path.Combine(dir, name);
        throw new AssertInconclusiveException("mpirun is not on the PATH: MPI is not installed (build/setup.sh installs MPICH). The 2-rank tests were not run.");
    }

    /// <summary><c>mpirun -np ranks dotnet advml.dll args</c> (ranks 0: no mpirun), one thread per rank; gives up after 180 s.</summary>
    private (int Code, string Out, string Err) Advml(string dir, int ranks, params string[] args)
    {
        var psi = new ProcessStartInfo(ranks > 0 ? RequireMpirun() : "dotnet") { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        if (ranks > 0)
        {
            if (psi.FileName.EndsWith("mpirun", StringComparison.Ordinal) && Environment.UserName == "root") psi.ArgumentList.Add("--allow-run-as-root");
            psi.ArgumentList.Add("-np");
            psi.ArgumentList.Add(ranks.ToString(System.Globalization.CultureInfo.InvariantCulture));
            psi.ArgumentList.Add("dotnet");
        }
        psi.ArgumentList.Add(CliTests.ToolPath());
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["FASHION_MNIST_DIR"] = TestData.Folder;
        psi.Environment["OMP_NUM_THREADS"] = "1";
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        var output = p.StandardOutput.ReadToEndAsync();
        if (!p.WaitForExit(180_000))
        {
            p.Kill(entireProcessTree: true);
            Assert.Fail($"advml did not finish in 180 s (a rank waiting forever?):\n{output.Result}\n{err.Result}");
        }
        TestContext.WriteLine($"{string.Join(" ", psi.ArgumentList)} -> {p.ExitCode}\n{output.Result}\n{err.Result}");
        Assert.AreEqual(0, p.ExitCode, err.Result);
        return (p.ExitCode, output.Result, err.Result);
    }

    private static double MaxWeightDifference(string a, string b)
    {
        var (ma, _) = ModelIO.Load(a);
        var (mb, _) = ModelIO.Load(b);
        using (ma)
        using (mb)
        {
            var pb = mb.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            double max = 0;
            foreach (var (name, p) in ma.named_parameters())
                max = Math.Max(max, (p - pb[name]).abs().max().item<float>());
            return max;
        }
    }

    [TestMethod]
    [TestCategory("Slow")]
    public void TwoRanksWithOverlapEqualOneRank()
    {
        string dir = TestData.TempFolder();
        // 0.05 MB buckets: the fully connected layers' bucket is reduced while the convolutions' backward runs.
        var two = Advml(dir, 2, Run.Concat(new[] { "-o", "two.advml", "--distributed", "--bucket-mb", "0.05" }).ToArray());
        string summary = two.Out.Split('\n').Single(l => l.StartsWith("Gradient allreduce:", StringComparison.Ordinal));
        StringAssert.Contains(summary, "2 bucket(s)");
        StringAssert.Contains(summary, "1.0 of 2 buckets started before it ended", "the first bucket starts during every backward pass");
        Advml(dir, 0, Run.Concat(new[] { "-o", "one.advml" }).ToArray());
        double difference = MaxWeightDifference(Path.Combine(dir, "one.advml"), Path.Combine(dir, "two.advml"));
        TestContext.WriteLine($"max |w_1rank - w_2ranks, overlapped| after 20 steps: {difference:E2}");
        Assert.IsTrue(difference <= 1e-5, $"weights differ by {difference} (> 1e-5)");
    }

    [TestMethod]
    [TestCategory("Slow")]
    public void TwoRanksGiveTheSameBitsWithOverlapWithoutAndWithOneBuffer()
    {
        string dir = TestData.TempFolder();
        Advml(dir, 2, Run.Concat(new[] { "-o", "on.advml", "--distributed", "--bucket-mb", "0.05" }).ToArray());
        var off = Advml(dir, 2, Run.Concat(new[] { "-o", "off.advml", "--distributed", "--bucket-mb", "0.05", "--no-overlap" }).ToArray());
        StringAssert.Contains(off.Out, "after the backward pass;");
        Advml(dir, 2, Run.Concat(new[] { "-o", "one-buffer.advml", "--distributed", "--bucket-mb", "0" }).ToArray());
        Assert.AreEqual(0.0, MaxWeightDifference(Path.Combine(dir, "on.advml"), Path.Combine(dir, "off.advml")), "overlap on and off");
        Assert.AreEqual(0.0, MaxWeightDifference(Path.Combine(dir, "on.advml"), Path.Combine(dir, "one-buffer.advml")), "buckets and one buffer (2 ranks: one addition per element)");
    }
}
