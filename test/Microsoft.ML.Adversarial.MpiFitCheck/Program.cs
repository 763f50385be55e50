// Usage: Microsoft.ML.Adversarial.MpiFitCheck OUTPUT_FOLDER [--distributed]
// Builds an ML.NET pipeline ending in AdversarialTrainingEstimator (SmallCnn, Algorithm 1 with k = 16 of m = 32) and
// fits it on the first 640 Fashion-MNIST training images, as a user's program does; with --distributed the estimator's
// options ask for data-parallel training and the program is started by mpiexec -np N. Every rank writes its network's
// parameters (weights-rank<r>.bin: name, then float32 values) so a test can compare the ranks with each other and with
// a one-process Fit; rank 0 alone saves the ML.NET model (model.zip), as a program should.
using Microsoft.ML;
using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;

string output = args[0];
bool distributed = args.Contains("--distributed");
var ml = new MLContext(seed: 1); // the estimator's seed comes from the context: every rank must get the same one
var train = ml.Data.LoadFromFashionMnist(FashionMnistSplit.Train, count: 640, subset: SubsetMode.First);
var pipeline = ml.Transforms.CopyColumns("Image", "Pixels")
    .Append(ml.MulticlassClassification.Trainers.AdversarialTraining(new AdversarialTrainingEstimator.Options
    {
        FeatureColumnName = "Image",
        Model = new ModelSpec(Rho: 0.5),
        BatchSize = 32,
        AdversarialPerBatch = 16,
        Method = "step-ll",
        Epsilon = EpsilonDistribution.Fixed(8),
        Optimizer = OptimizerKind.Sgd,
        LearningRate = 0.05,
        Momentum = 0.9,
        MaxSteps = 12,
        Distributed = distributed ? new DistributedTrainingOptions() : null,
    }));
var model = pipeline.Fit(train);

var (rank, size) = distributed ? DistributedTrainingOptions.Join() : (0, 1);
var classifier = model.LastTransformer;
using (var file = new BinaryWriter(File.Create(Path.Combine(output, $"weights-rank{rank}.bin"))))
    foreach (var (name, p) in classifier.Model.named_parameters())
    {
        file.Write(name);
        var values = p.detach().cpu().contiguous().data<float>().ToArray();
        file.Write(values.Length);
        foreach (var v in values) file.Write(v);
    }
if (rank == 0)
{
    ml.Model.Save(model, train.Schema, Path.Combine(output, "model.zip"));
    Console.WriteLine($"fitted on {size} rank(s)");
}
