using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Evaluation;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Spectre.Console;
using TorchSharp;
using static TorchSharp.torch;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Experiments;

/// <summary>How big a reproduction run is.</summary>
internal sealed record Profile(string Name, int? TrainCount, int Epochs, int TestCount, int IterativeTestCount)
{
    /// <summary>Under 15 minutes on 2 CPU cores (the README's main job).</summary>
    public static Profile Quick { get; } = new("quick", 10_000, 2, 1_000, 300);
    /// <summary>The whole training set, 2 epochs; iterative methods on 2,000 test images (about 45 minutes on 2 cores).</summary>
    public static Profile Full { get; } = new("full", null, 2, 10_000, 2_000);

    /// <summary>
    /// The smallest run that exercises every table and figure (15 small models; several minutes on 2 CPU cores, 9 min
    /// measured; used by the tests). Its models stay below the findings' minimum clean accuracy, so its verdicts read
    /// "not enough data".
    /// </summary>
    public static Profile Smoke { get; } = new("smoke", 300, 1, 100, 40);

    /// <summary>Every profile, smallest first: what --help and the errors list.</summary>
    public static IReadOnlyList<Profile> All { get; } = new[] { Smoke, Quick, Full };

    /// <summary>What a profile is and costs, in one line.</summary>
    public string Summary => Name switch
    {
        "smoke" => "smoke (300 training images, 1 epoch; several minutes on 2 cores; checks that everything runs, its numbers mean little)",
        "quick" => "quick (10,000 images, 2 epochs; about 10 minutes on 2 cores)",
        "full" => "full (all 60,000 images, 2 epochs; about 45 minutes on 2 cores)",
        _ => Name,
    };

    /// <summary>The profiles for --help and errors: "smoke (...), quick (...) or full (...)".</summary>
    public static string List => string.Join(", ", All.Take(All.Count - 1).Select(p => p.Summary)) + " or " + All[^1].Summary;

    public static Profile Parse(string name) =>
        All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new CliException($"Unknown profile '{name}'. Use {string.Join(", ", All.Take(All.Count - 1).Select(p => p.Name))} or {All[^1].Name}: {List}.");
}

/// <summary>One model of the study: what it is and how it is trained.</summary>
internal sealed record ModelPlan(string Name, string Role, ModelSpec Spec, int K, string Method, int Seed, bool Iterative)
{
    public string Key(Profile p) => $"{Spec.ToJson()}|k{K}|{Method}|seed{Seed}|{p.TrainCount}|{p.Epochs}|v1";

    /// <summary>The plan under run seed <paramref name="seed"/>: the default seed 1 keeps each model's own seed, another shifts them all.</summary>
    public ModelPlan WithRunSeed(int seed) => this with { Seed = Seed + (seed - 1) };
}

/// <summary>Trained model plus its evaluation, shared by the tables and figures that need it.</summary>
internal sealed record StudyModel(ModelPlan Plan, nn.Module<Tensor, Tensor> Network, RobustnessReport OneStep, RobustnessReport? Iterative, double TrainSeconds);

/// <summary>
/// <c>advml reproduce</c>: trains the models the paper compares (at CPU scale), evaluates them, and writes report.md,
/// results.json and PNG figures. Trained models are kept in OUTPUT/models and reused when the run is repeated, so an
/// interrupted run loses at most the model being trained.
/// </summary>
internal sealed class Reproduction(Profile profile, string output, Func<bool, int?, ImageSet> load, Device device, CancellationToken ct, int seed = 1)
{
    public static readonly double[] Epsilons = { 2, 4, 8, 16 };

    public static IReadOnlyList<ModelPlan> Plans()
    {
        var relu = ActivationSpec.Relu;
        ModelSpec Cnn(double rho = 1, ActivationSpec? act = null) => new(ModelArchitecture.SmallCnn, rho, act ?? relu);
        return new List<ModelPlan>
        {
            new("A", "baseline (clean), transfer model A", Cnn(), 0, "none", 1, true),
            new("B", "transfer model B: A's architecture, another seed", Cnn(), 0, "none", 2, false),
            new("C", "transfer model C: ELU activations", Cnn(act: ActivationSpec.Parse("elu")), 0, "none", 3, false),
            new("D", "transfer model D: another architecture (SmallResNet)", new ModelSpec(ModelArchitecture.SmallResNet), 0, "none", 4, false),
            new("adv-step-ll", "adversarial training, step l.l. (the paper's choice)", Cnn(), 16, "step-ll", 1, true),
            new("adv-fgsm", "adversarial training, FGSM", Cnn(), 16, "fgsm", 1, false),
            new("adv-step-rnd", "adversarial training, step rnd.", Cnn(), 16, "step-rnd", 1, false),
            new("adv-random-sign", "adversarial training, sign of random noise", Cnn(), 16, "random-sign", 1, false),
            new("base-rho0.5", "clean, rho 0.5", Cnn(0.5), 0, "none", 1, true),
            new("adv-rho0.5", "step l.l. adversarial, rho 0.5", Cnn(0.5), 16, "step-ll", 1, true),
            new("base-rho2", "clean, rho 2", Cnn(2), 0, "none", 1, true),
            new("adv-rho2", "step l.l. adversarial, rho 2", Cnn(2), 16, "step-ll", 1, true),
            new("adv-relu6", "step l.l. adversarial, relu6", Cnn(act: ActivationSpec.Parse("relu6")), 16, "step-ll", 1, true),
            new("adv-reludecay", "step l.l. adversarial, ReluDecay 0.01", Cnn(act: ActivationSpec.Parse("reludecay:0.01")), 16, "step-ll", 1, true),
            new("adv-tanh", "step l.l. adversarial, tanh", Cnn(act: ActivationSpec.Parse("tanh")), 16, "step-ll", 1, true),
        };
    }

    public StudyResults Run()
    {
        var total = Stopwatch.StartNew();
        string modelDir = Path.Combine(output, "models");
        Directory.CreateDirectory(modelDir);
        var train = load(true, profile.TrainCount);
        var test = load(false, profile.TestCount);
        var iterTest = test.Stratified(profile.IterativeTestCount);
        AnsiConsole.MarkupLine($"Profile [bold]{profile.Name}[/]: {train.RowCount} training images, {Counted.Of(profile.Epochs, "epoch")}; {test.RowCount} test images " +
            $"({iterTest.RowCount} for iterative methods). Models are kept in {Markup.Escape(modelDir)} and reused on a rerun.");

        var models = new Dictionary<string, StudyModel>();
        foreach (var plan in Plans().Select(p => p.WithRunSeed(seed)))
        {
            ct.ThrowIfCancellationRequested();
            var (network, seconds) = TrainOrLoad(plan, train, modelDir);
            var oneStep = Evaluate(network, test, plan.Name, new[] { "step-ll", "fgsm" }, checkLeak: true);
            var iterative = plan.Iterative ? Evaluate(network, iterTest, plan.Name, new[] { "iter-basic", "iter-ll" }, checkLeak: false) : null;
            models[plan.Name] = new StudyModel(plan, network, oneStep, iterative, seconds);
        }

        var transferModels = new[] { "A", "B", "C", "D" }.ToDictionary(n => n, n => models[n].Network);
        var table4 = ConsoleOutput.WithProgress("transfer A-D", report => new TransferEvaluator(new TransferOptions
        {
            Methods = new[] { "fgsm", "iter-basic", "iter-ll" }, Epsilons = new[] { 16.0 }, Seed = seed, CancellationToken = ct,
            Progress = new InlineProgress<EvaluationProgress>(e => report(e.Done, e.Total, e.Stage)),
        }).Evaluate(transferModels, transferModels, iterTest, device));
        var figure2 = ConsoleOutput.WithProgress("transfer A to B by eps", report => new TransferEvaluator(new TransferOptions
        {
            Methods = new[] { "fgsm", "iter-basic", "iter-ll" }, Epsilons = Epsilons, Seed = seed, CancellationToken = ct,
            Progress = new InlineProgress<EvaluationProgress>(e => report(e.Done, e.Total, e.Stage)),
        }).Evaluate(new Dictionary<string, nn.Module<Tensor, Tensor>> { ["A"] = models["A"].Network },
            new Dictionary<string, nn.Module<Tensor, Tensor>> { ["B"] = models["B"].Network }, iterTest, device));

        return new StudyResults(profile, models, table4, figure2, train.RowCount, test.RowCount, iterTest.RowCount, total.Elapsed);
    }

    private (nn.Module<Tensor, Tensor> Network, double Seconds) TrainOrLoad(ModelPlan plan, ImageSet train, string modelDir)
    {
        string path = Path.Combine(modelDir, plan.Name + ".advml");
        string keyPath = Path.Combine(modelDir, plan.Name + ".json");
        string key = plan.Key(profile);
        if (File.Exists(path) && File.Exists(keyPath))
        {
            var saved = JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(keyPath));
            if (saved is not null && saved.GetValueOrDefault("key") == key)
            {
                AnsiConsole.MarkupLine($"[grey]{plan.Name}: reusing {Markup.Escape(path)}[/]");
                return (ModelIO.Load(path, device).Model, double.Parse(saved.GetValueOrDefault("seconds") ?? "0", System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        var options = new AdversarialTrainingOptions
        {
            AdversarialPerBatch = plan.K, Method = plan.K > 0 ? plan.Method : "step-ll", Epochs = profile.Epochs, Optimizer = OptimizerKind.Adam,
            LearningRate = 1e-3, Seed = plan.Seed, ProgressEvery = 20,
        };
        var watch = Stopwatch.StartNew();
        var (network, description, _) = ConsoleOutput.TrainWithProgress(plan.Spec, train, options, checkpoints: null, device, ct, $"train {plan.Name}");
        double seconds = watch.Elapsed.TotalSeconds;
        ModelIO.Save(network, description, path);
        OutputFiles.WriteAtomically(keyPath, JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["key"] = key, ["seconds"] = seconds.ToString("F1", System.Globalization.CultureInfo.InvariantCulture),
        }));
        return (network, seconds);
    }

    private RobustnessReport Evaluate(nn.Module<Tensor, Tensor> network, ImageSet data, string name, string[] methods, bool checkLeak) =>
        ConsoleOutput.WithProgress($"evaluate {name}: {string.Join(", ", methods)}", report => new RobustnessEvaluator(new RobustnessOptions
        {
            Methods = methods, Epsilons = Epsilons, CheckLabelLeaking = checkLeak, Seed = seed, CancellationToken = ct,
            Progress = new InlineProgress<EvaluationProgress>(e => report(e.Done, e.Total, null)),
        }).Evaluate(network, data, name, device));
}

/// <summary>Everything the report needs.</summary>
internal sealed record StudyResults(Profile Profile, IReadOnlyDictionary<string, StudyModel> Models, TransferReport Table4, TransferReport Figure2,
    int TrainCount, int TestCount, int IterativeTestCount, TimeSpan Elapsed)
{
    public AccuracyRow Row(string model, string method, double eps)
    {
        var m = Models[model];
        if (method == "clean") return m.OneStep.Clean;
        return method is "step-ll" or "fgsm" ? m.OneStep.Get(method, eps) : (m.Iterative ?? throw new InvalidOperationException($"{model} has no iterative results")).Get(method, eps);
    }
}
