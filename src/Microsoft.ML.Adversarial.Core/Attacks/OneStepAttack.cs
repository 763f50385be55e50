using static TorchSharp.torch;
using static TorchSharp.torch.nn;
using Microsoft.ML.Adversarial.Models;

namespace Microsoft.ML.Adversarial;

/// <summary>
/// A one-step method: <c>X_adv = Clip(X + eps * D(X))</c>, where D is a direction in pixel units per unit of
/// epsilon that does not depend on epsilon. So one gradient serves every epsilon
/// (<see cref="GenerateForEpsilons"/>).
/// </summary>
public abstract class OneStepAttack : Attack
{
    /// <summary>Creates a one-step method.</summary>
    /// <param name="name">Registry name.</param>
    /// <param name="options">Its settings.</param>
    protected OneStepAttack(string name, AttackOptions options) : base(name, options) { }

    /// <summary>The perturbation for epsilon = 1 pixel value, in pixel units.</summary>
    protected abstract Tensor Direction(AttackBatch batch);

    /// <inheritdoc/>
    protected sealed override Tensor Run(AttackBatch batch) => batch.Project(batch.Clean.Plus(batch.Step(batch.Epsilon, Direction(batch))));

    /// <summary>
    /// Adversarial images for each epsilon (pixel units), from a single gradient computation:
    /// element i of the result is what <see cref="Attack.Generate"/> gives with epsilon <paramref name="epsilons"/>[i].
    /// </summary>
    public override Tensor[] GenerateForEpsilons(Module<Tensor, Tensor> model, Tensor images, Tensor? labels, IReadOnlyList<double> epsilons)
    {
        PixelEpsilon.CheckAll(epsilons, nameof(epsilons));
        using var scope = NewDisposeScope();
        Tensor direction;
        AttackBatch batch;
        using (ModelMode.Set(model, Options.GradientsInTrainingMode))
        {
            batch = Prepare(model, images, labels, null);
            using var hold = ComputeModel.HoldFor(batch.Model);
            direction = Direction(batch);
        }
        var results = new Tensor[epsilons.Count];
        for (int i = 0; i < epsilons.Count; i++)
        {
            var b = batch.WithEpsilon(epsilons[i]);
            results[i] = b.Project(b.Clean.Plus(b.Step(b.Epsilon, direction))).detach().contiguous().MoveToOuterDisposeScope();
        }
        return results;
    }
}
