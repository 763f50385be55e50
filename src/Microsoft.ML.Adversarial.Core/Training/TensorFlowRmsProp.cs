using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training;

/// <summary>
/// RMSProp as TensorFlow implements it (<c>tf.train.RMSPropOptimizer</c> / the <c>ApplyRMSProp</c> kernel), the optimiser
/// the paper trained Inception v3 with. Per parameter, with gradient g (plus <c>wd p</c> when weight decay is set):
/// <code>
///   ms  = decay ms + (1 - decay) g^2          (ms starts at 1, not 0)
///   mom = momentum mom + lr g / sqrt(ms + eps) (epsilon inside the square root; lr inside the momentum)
///   p   = p - mom
/// </code>
/// PyTorch's RMSProp (<see cref="HeldScalarRmsProp"/>) starts ms at 0 and divides by <c>sqrt(ms) + eps</c>, so with
/// Inception's eps = 1 its first steps are much larger. The state (ms in <c>square_avg</c>, mom in
/// <c>momentum_buffer</c>) and checkpoint format are TorchSharp's RMSProp's; like the other trainer optimisers every
/// Scalar is held for the whole step (see HeldScalars) and every temporary lives in a dispose scope.
/// </summary>
internal sealed class TensorFlowRmsProp : RMSProp
{
    public TensorFlowRmsProp(IEnumerable<Parameter> parameters, double lr, double decay, double eps, double weightDecay, double momentum)
        : base(parameters, lr, decay, eps, weightDecay, momentum, centered: false, maximize: false)
    {
        // TensorFlow initialises the mean square to ones (rmsprop.py: init_ops.ones_initializer); TorchSharp made zeros.
        using var _ = no_grad();
        foreach (var group in _parameter_groups)
            foreach (var p in group.Parameters)
                ((State)_state[p.Handle]).square_avg.fill_(HeldScalars.One);
    }

    private static readonly Scalar MinusOne = (-1).ToScalar();

    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = group.Options;
        using var decay = o.alpha!.Value.ToScalar();
        using var keep = (1 - o.alpha.Value).ToScalar();
        using var eps = o.eps!.Value.ToScalar();
        using var wd = o.weight_decay!.Value.ToScalar();
        using var mom = o.momentum!.Value.ToScalar();
        using var lr = o.LearningRate!.Value.ToScalar();
        using var noGrad = no_grad();
        foreach (var p in group.Parameters)
        {
            if (p.grad is not { } grad) continue;
            using var scope = NewDisposeScope();
            var s = (State)_state[p.Handle];
            s.step += 1;
            if (o.weight_decay.Value != 0) grad = grad.add(p, wd);
            s.square_avg.mul_(decay).addcmul_(grad, grad, keep);
            var root = s.square_avg.add(eps, HeldScalars.One).sqrt_();
            // mom = momentum mom + lr g / root; with momentum 0 this is the plain step lr g / root, as in TensorFlow.
            s.momentum_buffer.mul_(mom).addcdiv_(grad, root, lr);
            p.add_(s.momentum_buffer, MinusOne);
        }
    }, closure);
}
