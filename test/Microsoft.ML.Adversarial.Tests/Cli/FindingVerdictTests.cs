using Microsoft.ML.Adversarial.Cli.Experiments;
using Microsoft.ML.Adversarial.Evaluation;

namespace Microsoft.ML.Adversarial.Tests.Cli;

/// <summary>
/// Issue 29: <c>advml reproduce</c>'s end-to-end test runs the smoke profile, whose models sit below the 50% bar, so it
/// only ever sees "not enough data". Here the findings are judged on trained-model numbers (all clean accuracies above
/// the bar) that do and do not show each claim, and every verdict must follow.
/// </summary>
[TestClass]
public sealed class FindingVerdictTests
{
    private const int N = 2_000;
    private static readonly string[] Models = { "A", "B", "C", "D", "adv-step-ll", "adv-fgsm", "adv-step-rnd", "adv-random-sign", "adv-rho0.5", "adv-rho2", "adv-relu6", "adv-reludecay", "adv-tanh" };

    /// <summary>A study whose every accuracy is <paramref name="top1"/>(model, method, eps), and whose transfer rates are <paramref name="transfer"/>(method, eps).</summary>
    private static StudyResults Study(Func<string, string, double, double> top1, Func<string, double, double> transfer)
    {
        RobustnessReport Report(string model, IEnumerable<string> methods)
        {
            double clean = top1(model, "clean", 0);
            var rows = new List<AccuracyRow> { new(model, "clean", 0, N, clean, 1, 1) };
            foreach (var m in methods)
                foreach (var e in Reproduction.Epsilons)
                    rows.Add(new AccuracyRow(model, m, e, N, top1(model, m, e), 1, top1(model, m, e) / clean));
            return new RobustnessReport { Model = model, Rows = rows, LabelLeaks = Array.Empty<LabelLeakRow>(), Warnings = Array.Empty<string>() };
        }
        var models = Models.ToDictionary(m => m, m => new StudyModel(
            new ModelPlan(m, "test", new Models.ModelSpec(), 0, "fgsm", 1, false), null!, Report(m, new[] { "step-ll", "fgsm" }), Report(m, new[] { "iter-basic", "iter-ll" }), 0));
        var sources = new[] { "A", "B", "C", "D" };
        var table4 = new TransferReport
        {
            Rows = (from s in sources from t in sources from m in new[] { "fgsm", "iter-basic", "iter-ll" }
                    select new TransferRow(s, t, m, 16, N, 0.5, 0.9, N / 2, s == t ? 1 : transfer(m, 16), 0.5)).ToList(),
        };
        var figure2 = new TransferReport { Rows = Reproduction.Epsilons.Select(e => new TransferRow("A", "B", "fgsm", e, N, 0.5, 0.9, N / 2, transfer("fgsm", e), 0.5)).ToList() };
        return new StudyResults(Profile.Smoke, models, table4, figure2, N, N, N, TimeSpan.Zero);
    }

    /// <summary>The paper's numbers, roughly: every finding shown.</summary>
    private static double PaperLike(string model, string method, double eps) => (model, method) switch
    {
        (_, "clean") => model == "adv-fgsm" ? 0.76 : 0.78,
        ("A", "step-ll") => 0.30,
        ("adv-step-ll" or "adv-step-rnd" or "adv-relu6" or "adv-reludecay", "step-ll") => 0.70,
        ("adv-tanh", "step-ll") => 0.60,
        ("adv-rho0.5", "step-ll") => 0.50,
        ("adv-rho2", "step-ll") => 0.76,
        ("adv-fgsm", "fgsm") => eps == 8 ? 0.88 : 0.70,
        ("adv-random-sign", "fgsm") => 0.30,
        ("adv-step-ll" or "adv-step-rnd", "fgsm") => 0.72,
        (_, "iter-ll" or "iter-basic") => 0.02,
        _ => 0.5,
    };

    private static double PaperTransfer(string method, double eps) => method switch { "fgsm" => 0.25 + eps * 0.02, "iter-basic" => 0.40, _ => 0.12 };

    [TestMethod]
    public void EveryFindingIsYesWhenTrainedModelsShowIt()
    {
        var findings = ReportWriter.Findings(Study(PaperLike, PaperTransfer));
        Assert.IsTrue(findings.Count >= 8);
        foreach (var f in findings)
            Assert.AreEqual(ReportWriter.Yes, f.Verdict, $"{f.Id}: {f.Ours} ({f.Note})");
    }

    [TestMethod]
    public void EachFindingIsNoWhenItsNumbersContradictIt()
    {
        // One contradiction per finding, the rest as the paper (a number several findings read may turn them all).
        var cases = new (string Id, Func<string, string, double, double> Top1, Func<string, double, double> Transfer)[]
        {
            ("T1-robust", (m, k, e) => (m, k) == ("adv-step-ll", "step-ll") ? 0.30 : PaperLike(m, k, e), PaperTransfer),
            ("T1-clean", (m, k, e) => (m, k) == ("adv-step-ll", "clean") ? 0.60 : PaperLike(m, k, e), PaperTransfer),
            ("T2-iterative", (m, k, e) => (m, k) == ("adv-step-ll", "iter-ll") ? 0.70 : PaperLike(m, k, e), PaperTransfer),
            ("T3-leak", (m, k, e) => (m, k) == ("adv-fgsm", "fgsm") ? 0.60 : PaperLike(m, k, e), PaperTransfer),
            ("T4-transfer", PaperLike, (k, e) => k == "iter-ll" ? 0.9 : PaperTransfer(k, e)),
            ("T5-methods", (m, k, e) => (m, k) == ("adv-random-sign", "fgsm") ? 0.72 : PaperLike(m, k, e), PaperTransfer),
            ("F1-capacity", (m, k, e) => (m, k) == ("adv-rho2", "step-ll") ? 0.40 : PaperLike(m, k, e), PaperTransfer),
            ("F2-eps", PaperLike, (k, e) => k == "fgsm" ? 0.6 - e * 0.02 : PaperTransfer(k, e)),
            ("T7-activations", (m, k, e) => (m, k) == ("adv-tanh", "step-ll") ? 0.80 : PaperLike(m, k, e), PaperTransfer),
        };
        foreach (var (id, top1, transfer) in cases)
        {
            var findings = ReportWriter.Findings(Study(top1, transfer)).ToDictionary(f => f.Id);
            Assert.AreEqual(ReportWriter.No, findings[id].Verdict, $"{id}: {findings[id].Ours}");
        }
        // And a model below the bar turns its findings into "not enough data", never yes or no.
        var weak = ReportWriter.Findings(Study((m, k, e) => (m, k) == ("A", "clean") ? 0.38 : PaperLike(m, k, e), PaperTransfer)).ToDictionary(f => f.Id);
        Assert.AreEqual(ReportWriter.NotEnoughData, weak["T1-robust"].Verdict);
        Assert.AreEqual(ReportWriter.Yes, weak["T5-methods"].Verdict, "findings not judged on A keep their verdict");
    }
}
