using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.IO;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using Spectre.Console;
using TorchSharp;

using Microsoft.ML.Adversarial.Cli.Common;

namespace Microsoft.ML.Adversarial.Cli.Commands;

/// <summary><c>advml train</c>: clean (--k 0) or adversarial training (Algorithm 1) with checkpoints and --resume.</summary>
internal static class TrainCommand
{
    private static readonly Option<string> Output = new("--output", "-o") { Description = "Model file to write (.advml)", Required = true };
    private static readonly Option<int?> Count = CommonOptions.Positive(new("--count") { Description = "Training images to use (class-balanced subset); all when left out" });
    // Earlier spellings, kept (hidden from --help) so existing scripts keep working; --count and --batch-size are the
    // names every command uses.
    private static readonly Option<int?> TrainCount = CommonOptions.Positive(new("--train-count") { Description = "Old name of --count", Hidden = true });
    private static readonly Option<int?> OldBatch = CommonOptions.Positive(new("--batch", "-m") { Description = "Old name of --batch-size", Hidden = true });
    private static readonly Option<string> Arch = new("--arch") { Description = $"The network: {Architectures.NameList}", DefaultValueFactory = _ => "smallcnn" };
    private static readonly Option<double> Rho = new("--rho") { Description = "Width multiplier of every layer", DefaultValueFactory = _ => 1 };
    private static readonly Option<string> Activation = new("--activation") { Description = "relu, relu6, reludecay[:beta], tanh, elu", DefaultValueFactory = _ => "relu" };
    private static readonly Option<double> Dropout = new("--dropout") { Description = "Dropout before the last layer", DefaultValueFactory = _ => 0 };
    private static readonly Option<bool> Deeper = new("--deeper") { Description = "Inception v3 with two extra blocks" };
    private static readonly Option<bool> AuxLogits = new("--aux-logits") { Description = "Inception v3 auxiliary classifier" };
    private static readonly Option<int> K = new("--k") { Description = "Adversarial examples per minibatch (0 = clean training)", DefaultValueFactory = _ => 16 };
    private static readonly Option<int> M = CommonOptions.InRange(new("--batch-size") { Description = "Minibatch size m (the paper's m)", DefaultValueFactory = _ => 32 }, 1, 1 << 20);
    private static readonly Option<double> Lambda = new("--lambda") { Description = "Weight of the adversarial loss", DefaultValueFactory = _ => 0.3 };
    private static readonly Option<string> Method = new("--method") { Description = "Method that makes the adversarial examples", DefaultValueFactory = _ => "step-ll" };
    private static readonly Option<string?> MethodMix = new("--method-mix") { Description = "Comma list; one method drawn per minibatch" };
    private static readonly Option<string> Epsilon = new("--epsilon") { Description = "paper | fixed:16 | uniform:0:16 | truncnormal:8:16", DefaultValueFactory = _ => "paper" };
    private static readonly Option<int> Delay = new("--delay") { Description = "Clean-only steps before adversarial ones", DefaultValueFactory = _ => 0 };
    private static readonly Option<string> Optimizer = new("--optimizer")
    {
        Description = "adam, rmsprop (PyTorch's), tf-rmsprop (TensorFlow's, as the paper trained Inception v3) or sgd",
        DefaultValueFactory = _ => OptimizerName(AdversarialTrainingOptions.DefaultOptimizer),
    };
    private static readonly Option<double> LearningRate = new("--lr") { Description = "Learning rate", DefaultValueFactory = _ => AdversarialTrainingOptions.DefaultLearningRate };
    private static readonly Option<string?> Preset = new("--preset")
    {
        Description = "paper-inception-v3: the paper's Inception v3 recipe (tf-rmsprop, lr 0.045 x 0.94 every 2 epochs, momentum 0.9, label smoothing 0.1, " +
                      "gradient clipping 2.0, weight decay 4e-5); options given explicitly override it",
    };

    private static readonly (string Name, OptimizerKind Kind)[] OptimizerNames =
        { ("adam", OptimizerKind.Adam), ("rmsprop", OptimizerKind.RmsProp), ("tf-rmsprop", OptimizerKind.TensorFlowRmsProp), ("sgd", OptimizerKind.Sgd) };

    private static string OptimizerName(OptimizerKind kind) => OptimizerNames.First(n => n.Kind == kind).Name;
    private static readonly Option<double> Momentum = new("--momentum") { Description = "SGD/RMSProp momentum", DefaultValueFactory = _ => 0 };
    private static readonly Option<double> WeightDecay = new("--weight-decay") { DefaultValueFactory = _ => 0 };
    private static readonly Option<double> LabelSmoothing = new("--label-smoothing") { DefaultValueFactory = _ => 0 };
    private static readonly Option<int> Epochs = new("--epochs") { DefaultValueFactory = _ => 1 };
    private static readonly Option<int?> MaxSteps = new("--max-steps") { Description = "Stop after this many steps" };
    private static readonly Option<string?> Checkpoint = new("--checkpoint") { Description = "Checkpoint folder (weights, optimiser, step; atomic writes)" };
    private static readonly Option<int> CheckpointEvery = new("--checkpoint-every") { DefaultValueFactory = _ => 500 };
    private static readonly Option<bool> Resume = new("--resume") { Description = "Continue from the checkpoint folder's last checkpoint" };
    private static readonly Option<bool> Overwrite = new("--overwrite") { Description = "Start over in a --checkpoint folder that holds a checkpoint (deletes it)" };
    private static readonly Option<bool> Distributed = new("--distributed")
    {
        Description = "Synchronous data-parallel training over MPI, one replica per rank: mpirun -np N advml train ... --distributed; --batch-size and --k are the global m and k (docs/scale.md)",
    };
    private static readonly Option<bool> AverageBatchNorm = new("--average-bn") { Description = "With --distributed: average BatchNorm statistics over the replicas at checkpoints and at the end" };
    private static readonly Option<double?> BucketMb = new("--bucket-mb")
    {
        Description = "With --distributed: size in MB of the buckets gradients are averaged in (default 4; 0: one buffer after the backward pass)",
    };
    private static readonly Option<bool> NoOverlap = new("--no-overlap") { Description = "With --distributed: average the gradient buckets after the backward pass instead of during it" };

    public static System.CommandLine.Command Create()
    {
        var c = new System.CommandLine.Command("train", "Train a classifier, clean (--k 0) or adversarially (the paper's Algorithm 1)");
        foreach (var o in new Option[] { Output, Count, TrainCount, OldBatch, Arch, Rho, Activation, Dropout, Deeper, AuxLogits, K, M, Lambda, Method, MethodMix, Epsilon, Delay,
                     Optimizer, LearningRate, Preset, Momentum, WeightDecay, LabelSmoothing, Epochs, MaxSteps, Checkpoint, CheckpointEvery, Resume, Overwrite, Distributed, AverageBatchNorm, BucketMb, NoOverlap, CommonOptions.Seed, CommonOptions.Device, CommonOptions.Precision, CommonOptions.ComputePath })
            c.Options.Add(o);
        CommonOptions.AddData(c);
        c.SetAction((p, ct) => Task.FromResult(Run(p, ct)));
        return c;
    }

    internal static AdversarialTrainingOptions TrainingOptions(ParseResult p)
    {
        var o = p.GetValue(Preset) switch
        {
            null => new AdversarialTrainingOptions(),
            var name when name.Equals("paper-inception-v3", StringComparison.OrdinalIgnoreCase) => AdversarialTrainingOptions.PaperInceptionV3(),
            var name => throw new CliException($"Unknown --preset '{name}'. Use paper-inception-v3, or leave it out for the defaults (adam, lr 1e-3)."),
        };
        // With a preset only the options given on the command line override it; without one every option applies.
        bool preset = p.GetValue(Preset) is not null;
        T Value<T>(Option<T> option, T current) => !preset || p.GetResult(option) is { Implicit: false } ? p.GetValue(option)! : current;
        bool batchGiven = p.GetResult(M) is { Implicit: false } || p.GetResult(OldBatch) is { Implicit: false };
        o.BatchSize = !preset || batchGiven ? OneOf(p, M, OldBatch) ?? 32 : o.BatchSize;
        o.AdversarialPerBatch = Value(K, o.AdversarialPerBatch);
        o.AdversarialLossWeight = Value(Lambda, o.AdversarialLossWeight);
        o.Method = Value(Method, o.Method);
        o.MethodMix = p.GetValue(MethodMix)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        o.DelaySteps = p.GetValue(Delay);
        o.Epochs = p.GetValue(Epochs);
        o.MaxSteps = p.GetValue(MaxSteps);
        o.LearningRate = Value(LearningRate, o.LearningRate);
        o.Momentum = Value(Momentum, o.Momentum);
        o.WeightDecay = Value(WeightDecay, o.WeightDecay);
        o.LabelSmoothing = Value(LabelSmoothing, o.LabelSmoothing);
        o.Seed = p.GetValue(CommonOptions.Seed);
        o.Compute = CommonOptions.Compute(p);
        o.ProgressEvery = 20;
        if (p.GetValue(Distributed))
        {
            o.Distributed = new DistributedTrainingOptions { AverageBatchNormStatistics = p.GetValue(AverageBatchNorm), OverlapAllreduce = !p.GetValue(NoOverlap) };
            if (p.GetValue(BucketMb) is { } mb)
            {
                if (!(mb >= 0) || double.IsInfinity(mb)) throw new CliException($"--bucket-mb {mb}: give a size in MB, 0 or more (0: one buffer after the backward pass).");
                o.Distributed.BucketMegabytes = mb;
            }
        }
        else if (p.GetValue(AverageBatchNorm) || p.GetValue(NoOverlap) || p.GetValue(BucketMb) is not null)
            throw new CliException("--average-bn, --bucket-mb and --no-overlap apply to --distributed training only; add --distributed or leave them out.");
        // Copies started by mpiexec without --distributed would each train alone and write the same files. Rank 0 alone
        // says so: the copies' lines would interleave.
        else if (DistributedTrainingOptions.Launched is { Size: > 1 } launched)
        {
            if (launched.Rank != 0) Console.SetError(TextWriter.Null);
            int ranks = launched.Size;
            throw new CliException($"this is one of {ranks} copies of advml train started by an MPI launcher (mpiexec/mpirun) without --distributed: each would " +
                $"train alone, writing the same model and checkpoint files. To train them as one run, add --distributed (mpiexec -np {ranks} advml train ... " +
                "--distributed); to train once, start advml train without mpiexec.");
        }
        try
        {
            if (!preset || p.GetResult(Epsilon) is { Implicit: false }) o.Epsilon = EpsilonDistribution.Parse(p.GetValue(Epsilon)!);
            string optimizer = Value(Optimizer, OptimizerName(o.Optimizer))!.ToLowerInvariant();
            o.Optimizer = OptimizerNames.FirstOrDefault(n => n.Name == optimizer).Name is not null
                ? OptimizerNames.First(n => n.Name == optimizer).Kind
                : throw new CliException($"Unknown optimiser '{optimizer}'. Use {string.Join(", ", OptimizerNames.Select(n => n.Name))}.");
            o.Validate();
        }
        catch (Exception e) when (e is ArgumentException or FormatException)
        {
            throw new CliException(e.Message);
        }
        return o;
    }

    /// <summary>The value of an option or of its old spelling (given both, an error), or the option's default.</summary>
    private static T? OneOf<T>(ParseResult p, Option<T> option, Option<T?> old) where T : struct
    {
        bool given = p.GetResult(option) is { Implicit: false }, oldGiven = p.GetResult(old) is { Implicit: false };
        if (given && oldGiven) throw new CliException($"{option.Name} and {old.Name} (its old name) are both given; give {option.Name} only.");
        return oldGiven ? p.GetValue(old) : p.GetValue(option);
    }

    private static int? OneOf(ParseResult p, Option<int?> option, Option<int?> old)
    {
        bool given = p.GetResult(option) is { Implicit: false }, oldGiven = p.GetResult(old) is { Implicit: false };
        if (given && oldGiven) throw new CliException($"{option.Name} and {old.Name} (its old name) are both given; give {option.Name} only.");
        return oldGiven ? p.GetValue(old) : p.GetValue(option);
    }

    internal static ModelSpec Spec(ParseResult p)
    {
        try
        {
            var spec = new ModelSpec(ModelSpec.ParseArchitecture(p.GetValue(Arch)!), p.GetValue(Rho), ActivationSpec.Parse(p.GetValue(Activation)!), p.GetValue(Dropout))
            {
                Deeper = p.GetValue(Deeper), AuxLogits = p.GetValue(AuxLogits),
            };
            spec.Validate();
            return spec;
        }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    private static int Run(ParseResult p, CancellationToken ct)
    {
        // Under a launcher each rank is a supervisor with the trainer as its child, so a rank that dies is named (RankSupervisor).
        if (p.GetValue(Distributed) && RankSupervisor.Supervise(p.GetValue(Checkpoint)) is int rankExit) return rankExit;
        string output = p.GetValue(Output)!;
        var options = TrainingOptions(p);
        var spec = Spec(p);
        var device = CommonOptions.ParseDevice(p);
        bool writer = options.Distributed is null || JoinQuietly() == 0; // under MPI rank 0 alone prints and writes files
        if (writer) OutputFiles.EnsureWritable(output, isFolder: false);
        var checkpoints = new CheckpointOptions { Directory = p.GetValue(Checkpoint), Every = p.GetValue(CheckpointEvery), Resume = p.GetValue(Resume) };
        bool overwrite = p.GetValue(Overwrite);
        if (checkpoints.Resume && checkpoints.Directory is null) throw new CliException("--resume needs --checkpoint FOLDER (the folder of the interrupted run).");
        if (checkpoints.Resume && overwrite) throw new CliException("--resume continues the checkpoint and --overwrite deletes it; give one of them.");
        long? earlier = checkpoints.Directory is { } d ? Training.Checkpoint.SavedStep(d) : null;
        // Without --resume the run would start at step 0 and replace a later checkpoint with earlier ones.
        if (earlier is not null && !checkpoints.Resume && !overwrite)
            throw new CliException($"--checkpoint folder '{checkpoints.Directory}' holds a checkpoint at step {earlier}; add --resume to continue it, or --overwrite to start over (deletes it).");
        if (checkpoints.Directory is { } dir && writer) OutputFiles.EnsureWritable(dir, isFolder: true, option: "--checkpoint");

        var data = CliData.OpenTrainSplit(p, OneOf(p, Count, TrainCount));
        var (c, h, w) = data.ImageShape;
        var planned = new ModelDescription(spec, data.ClassNames.Count, c, h, w, data.ClassNames.ToArray()) { InputRange = options.InputRange };
        try { planned.Validate(); } // before allocating: a too-large network is an error, not a native crash
        catch (ArgumentException e) { throw new CliException(e.Message); }
        // Room for the model file and for checkpoints (weights and up to two optimiser moments each), probed for real
        // now: a full disk is found before training, not after it.
        long weights = planned.EstimateParameterCount() * sizeof(float);
        if (writer) OutputFiles.EnsureWritable(output, isFolder: false, weights + AtomicFile.DefaultProbeBytes);
        if (checkpoints.Directory is { } ck && writer)
        {
            OutputFiles.EnsureWritable(ck, isFolder: true, 3 * weights + AtomicFile.DefaultProbeBytes, "--checkpoint");
            if (earlier is not null && overwrite) Training.Checkpoint.Delete(ck);
        }
        AnsiConsole.MarkupLine($"Training [bold]{Markup.Escape(spec.ToString())}[/] on {data.RowCount} images {data.ImageShape}, " +
            (options.MaxSteps is { } max ? $"at most {Counted.Of(options.Epochs, "epoch")} and {Counted.Of(max, "step")}, " : $"{Counted.Of(options.Epochs, "epoch")}, ") +
            (options.AdversarialPerBatch == 0 ? "clean" : Markup.Escape($"k = {options.AdversarialPerBatch} of {options.BatchSize} by {options.Method}, lambda {options.AdversarialLossWeight}, eps {options.Epsilon}")));
        var (model, description, result) = ConsoleOutput.TrainWithProgress(spec, data, options, checkpoints, device, ct);
        if (writer) Save(model, description, output, checkpoints.Directory);
        var last = result.History.LastOrDefault();
        AnsiConsole.MarkupLine($"Done: {result.Steps} steps in {result.Elapsed.TotalSeconds:F0} s" + (result.ResumedFromStep > 0 ? $" (resumed at {result.ResumedFromStep})" : "") +
            (last is null ? "" : $", last loss {last.Loss:F4}, clean batch accuracy {last.CleanAccuracy:P1}") + $". Saved [bold]{Markup.Escape(output)}[/].");
        if (result.GradientAveraging is { } averaging) Console.WriteLine(averaging); // one line (AnsiConsole wraps at the terminal width)
        return 0;
    }

    /// <summary>Joins the MPI job; a rank other than 0 prints nothing from here on but errors (stderr). Returns the rank.</summary>
    private static int JoinQuietly()
    {
        int rank;
        try { rank = DistributedTrainingOptions.Join().Rank; }
        catch (Exception e) when (e is DllNotFoundException or InvalidOperationException) { throw new CliException("--distributed: " + e.Message); }
        if (rank != 0)
        {
            Console.SetOut(TextWriter.Null);
            AnsiConsole.Console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(TextWriter.Null) });
        }
        return rank;
    }

    /// <summary>
    /// Saves the trained model (atomically: an existing file is replaced only by a complete new one). If that fails
    /// (the disk filled up during training), the model is saved to the checkpoint folder or the temp folder instead and
    /// the error says where, so the training is not lost.
    /// </summary>
    private static void Save(torch.nn.Module<torch.Tensor, torch.Tensor> model, ModelDescription description, string output, string? checkpointDir)
    {
        try
        {
            ModelIO.Save(model, description, output);
            return;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string name = $"{Path.GetFileNameWithoutExtension(output)}-rescued-{DateTime.Now:yyyyMMdd-HHmmss}-{Environment.ProcessId}.advml";
            foreach (var folder in new[] { checkpointDir, Path.GetTempPath() }.OfType<string>())
            {
                string rescue = Path.GetFullPath(Path.Combine(folder, name));
                try
                {
                    ModelIO.Save(model, description, rescue);
                }
                catch (Exception again) when (again is IOException or UnauthorizedAccessException)
                {
                    continue;
                }
                throw new IOException($"Could not write the model to '{output}' ({CliException.OneLine(e.Message)}). The trained model was saved to '{rescue}' instead; move it to '{output}' once there is space.", e);
            }
            throw new IOException($"Could not write the model to '{output}' ({CliException.OneLine(e.Message)}), nor to the checkpoint or temp folder. " +
                (checkpointDir is null ? "The training is lost; free space and rerun." : $"Free space and rerun with --resume: the checkpoint in '{checkpointDir}' holds the training."), e);
        }
    }
}
