using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// The workloads both sides run: attacks at eps 16 on a fixed random batch, and one adversarial-training step
/// (m = batch, k = m / 2, step l.l., lambda 0.3, RMSProp as the paper). Same shapes as benchmark_pytorch.py.
/// </summary>
internal sealed class Workload : IDisposable
{
    public static readonly string[] Names = { "fgsm", "step-ll", "iter-basic", "train-step" };

    private readonly nn.Module<Tensor, Tensor> _model;
    private readonly Tensor _x, _y;
    private readonly Attack? _attack;
    private readonly AdversarialTrainer? _trainer;
    private readonly TorchSharp.Modules.OptimizerHelper? _optimizer;
    private long _step;
    private readonly ComputeOptions _compute;

    /// <param name="compute">How the network runs; null is the library's default (fp32, channels-last, BatchNorm folded).</param>
    public Workload(string name, string network, int batch, ComputeOptions? compute = null)
    {
        compute ??= ComputeOptions.Default;
        _compute = compute;
        Name = name;
        Network = network;
        Batch = batch;
        manual_seed(0);
        (int c, int side, int classes) = network switch { "smallcnn" => (1, 28, 10), "resnet50" => (3, 224, 1000), _ => (3, 299, 1000) };
        _model = network switch
        {
            "smallcnn" => new SmallCnn(),
            "inception" => new InceptionV3(classes: 1000, auxLogits: false),
            "resnet50" => new ModelSpec(ModelArchitecture.ResNet50).Create(classes, (c, side, side)),
            _ => throw new ArgumentException($"Unknown network '{network}'. Known: smallcnn, inception, resnet50."),
        };
        _x = rand(batch, c, side, side);
        _y = randint(0, classes, new long[] { batch });
        if (name == "train-step")
        {
            var options = new AdversarialTrainingOptions { BatchSize = batch, AdversarialPerBatch = batch / 2, Epsilon = EpsilonDistribution.Fixed(8), ProgressEvery = 1, Compute = compute };
            _trainer = new AdversarialTrainer(options);
            _optimizer = _trainer.CreateOptimizer(_model);
            _model.train();
        }
        else
        {
            _model.eval();
            _attack = AttackRegistry.Create(name, new AttackOptions { Epsilon = 16, Compute = compute });
        }
    }

    public string Name { get; }
    public string Network { get; }
    public int Batch { get; }

    public void Run()
    {
        using var scope = NewDisposeScope();
        if (_trainer is not null) _trainer.Step(_model, _optimizer!, _x, _y, _step++);
        else _attack!.Generate(_model, _x, _y);
    }

    /// <summary>
    /// The accuracy gate of this workload's compute path: the run-time check's verdict for its network, batch shape,
    /// options and mode on this CPU. A speed is printed only beside a path whose outputs equal the plain path's.
    /// </summary>
    public FastPathVerdict Verdict() => FastPathCheck.Verify(_model, _compute, _x, training: _trainer is not null);

    /// <summary>
    /// Runs <paramref name="layers"/> in NCHW on this workload's prepared networks (the attack's and, for the training
    /// step, the training pass's), as the run-time check does where they are wrong on channels-last input.
    /// </summary>
    public void RunInPlainLayout(IReadOnlyList<string> layers)
    {
        ComputeModel.For(_model, _compute, evaluationOnly: true)?.RunInPlainLayout(layers);
        if (_trainer is not null) ComputeModel.For(_model, _compute, evaluationOnly: false)?.RunInPlainLayout(layers);
    }

    /// <summary>The gate as a table cell: "agrees", "agrees after N layer(s) in NCHW", or why no speed counts.</summary>
    public static string Gate(FastPathVerdict v) => v.Outcome switch
    {
        FastPathOutcome.Agrees => "agrees",
        FastPathOutcome.LayersInPlainLayout => $"agrees with {v.PlainLayoutLayers.Count} layer(s) in NCHW",
        _ => "DISAGREES (plain path ran)",
    };

    public void Dispose()
    {
        _model.Dispose();
        _x.Dispose();
        _y.Dispose();
    }
}
