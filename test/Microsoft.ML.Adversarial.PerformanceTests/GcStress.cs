using System.Diagnostics;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Long variant of NativeLifetimeStressTests (issue 13): every attack and adversarial training steps (RMSProp, the
/// paper's optimiser) on a 784-256-10 perceptron with 256-image batches, while another thread forces full GCs and
/// runs finalizers without pause. Any freed native Scalar shows as an exception or as a result that differs from the
/// one computed before the pressure started. Exit code 0 when every check held for the whole duration.
/// </summary>
internal static class GcStress
{
    public static int Run(int seconds, int threads)
    {
        torch.set_num_threads(threads);
        manual_seed(1);
        var model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10));
        var x = rand(256, 1, 28, 28);
        var y = randint(0, 10, new long[] { 256 });
        var attacks = AttackRegistry.Names.Select(n => Attacks.ByName(n, eps: 4, seed: 7)).ToList();
        model.eval();
        var expected = attacks.Select(a => { a.ResetRandom(); return a.Generate(model, x, y); }).ToList();
        var trainer = new AdversarialTrainer(new AdversarialTrainingOptions { BatchSize = 256, AdversarialPerBatch = 128, LearningRate = 1e-3, Momentum = 0.5 });

        bool stop = false;
        long collections = 0;
        var hammer = new Thread(() =>
        {
            while (!Volatile.Read(ref stop)) { GC.Collect(); GC.WaitForPendingFinalizers(); Interlocked.Increment(ref collections); }
        }) { IsBackground = true };
        hammer.Start();
        var watch = Stopwatch.StartNew();
        long rounds = 0, steps = 0;
        try
        {
            var optimizer = trainer.CreateOptimizer(model);
            while (watch.Elapsed.TotalSeconds < seconds)
            {
                rounds++;
                for (int i = 0; i < attacks.Count; i++)
                {
                    using var scope = NewDisposeScope();
                    attacks[i].ResetRandom();
                    if (!attacks[i].Generate(model, x, y).equal(expected[i]).all().item<bool>())
                        throw new InvalidOperationException($"{attacks[i].Name}: round {rounds} differs from the result before the GC pressure.");
                }
                // Training changes the model, so the expected results are recomputed after the steps (under the
                // pressure too: a corrupted reference would show as a difference in the next round).
                using (var scope = NewDisposeScope())
                {
                    model.train();
                    for (int s = 0; s < 5; s++, steps++) trainer.Step(model, optimizer, x, y, steps);
                    model.eval();
                    for (int i = 0; i < attacks.Count; i++)
                    {
                        attacks[i].ResetRandom();
                        expected[i] = attacks[i].Generate(model, x, y).MoveToOuterDisposeScope();
                    }
                }
                Console.WriteLine($"{watch.Elapsed.TotalSeconds,6:F0} s: {rounds} rounds of {attacks.Count} attacks, {steps} training steps, {Interlocked.Read(ref collections)} forced GCs");
            }
        }
        catch (Exception e)
        {
            Console.Error.WriteLine($"FAILED after {rounds} rounds, {steps} steps, {Interlocked.Read(ref collections)} forced GCs: {e.GetType().Name}: {e.Message.Split('\n')[0]}");
            return 1;
        }
        finally
        {
            Volatile.Write(ref stop, true);
            hammer.Join();
        }
        Console.WriteLine($"OK: {rounds} rounds, {steps} training steps, {collections} forced GCs in {watch.Elapsed.TotalSeconds:F0} s.");
        return 0;
    }
}
