namespace Microsoft.ML.Adversarial.Tests.Training;

/// <summary>
/// Issue 30 item 4a: the ML.NET estimator's <c>Fit</c> under MPI, as a user's program runs it
/// (test/Microsoft.ML.Adversarial.MpiFitCheck: a pipeline ending in AdversarialTrainingEstimator with Distributed set,
/// launched by <c>mpiexec -np 2</c>).
/// </summary>
[TestClass]
public sealed class EstimatorUnderMpiTests
{
    public TestContext TestContext { get; set; } = null!;

    private static Dictionary<string, float[]> ReadWeights(string file)
    {
        var weights = new Dictionary<string, float[]>();
        using var reader = new BinaryReader(File.OpenRead(file));
        while (reader.BaseStream.Position < reader.BaseStream.Length)
        {
            string name = reader.ReadString();
            var values = new float[reader.ReadInt32()];
            for (int i = 0; i < values.Length; i++) values[i] = reader.ReadSingle();
            weights[name] = values;
        }
        return weights;
    }

    [TestMethod]
    [TestCategory("Slow")]
    public void FitOnTwoRanksGivesEveryRankTheWeightsOfAOneProcessFit()
    {
        string mpiexec = MpiJobs.RequireMpiexec();
        string program = TestData.BuiltAssembly(Path.Combine("test", "Microsoft.ML.Adversarial.MpiFitCheck"), "Microsoft.ML.Adversarial.MpiFitCheck.dll");
        string two = TestData.TempFolder(), one = TestData.TempFolder();
        var r = MpiJobs.Run(TestContext, two, mpiexec, new[] { "-np", "2", "dotnet", program, two, "--distributed" });
        Assert.AreEqual(0, r.Code, r.Err);
        Assert.AreEqual("fitted on 2 rank(s)", r.Out.Trim(), "rank 0 alone prints");
        Assert.AreEqual("", r.Err.Trim(), "no errors on success");
        Assert.IsTrue(File.Exists(Path.Combine(two, "model.zip")), "rank 0 saves the ML.NET model");
        var alone = MpiJobs.Run(TestContext, one, "dotnet", new[] { program, one });
        Assert.AreEqual(0, alone.Code, alone.Err);

        var rank0 = ReadWeights(Path.Combine(two, "weights-rank0.bin"));
        var rank1 = ReadWeights(Path.Combine(two, "weights-rank1.bin"));
        var single = ReadWeights(Path.Combine(one, "weights-rank0.bin"));
        CollectionAssert.AreEquivalent(single.Keys.ToArray(), rank0.Keys.ToArray());
        double max = 0;
        foreach (var (name, w) in single)
        {
            CollectionAssert.AreEqual(rank0[name], rank1[name], $"'{name}': both ranks must end with the same weights, bit for bit");
            for (int i = 0; i < w.Length; i++) max = Math.Max(max, Math.Abs(w[i] - rank0[name][i]));
        }
        TestContext.WriteLine($"max |w_1process - w_2ranks| after 12 steps of Fit: {max:E2}");
        Assert.IsTrue(max <= 1e-5, $"the 2-rank Fit differs from the 1-process Fit by {max} (> 1e-5)");
        Assert.IsTrue(single.Values.Any(w => w.Any(v => v != 0)), "weights were written");
    }
}
