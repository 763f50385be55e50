using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training;

// TorchSharp's optimizers build their update from temporary Scalars (the decay rates, eps, -lr, the hidden alpha of
// add_), whose native memory the finalizer can free while libtorch still reads it when another thread triggers a GC
// during the step (see HeldScalars; issue 13 saw it in Adam's division). These subclasses keep TorchSharp's state,
// parameter groups and state_dict format (so checkpoints are unchanged) and redo only step(), with the same update
// rules (PyTorch's), operation for operation, so results are bit-identical, but every Scalar is held for the whole
// call. They support the options the trainer sets; anything else is refused at construction.

/// <summary>RMSProp (non-centred, optional momentum) with held Scalars.</summary>
internal sealed class HeldScalarRmsProp(IEnumerable<Parameter> parameters, double lr, double alpha, double eps, double weightDecay, double momentum)
    : RMSProp(parameters, lr, alpha, eps, weightDecay, momentum, centered: false, maximize: false)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = group.Options;
        using var decay = o.alpha!.Value.ToScalar();
        using var keep = (1 - o.alpha.Value).ToScalar();
        using var eps = o.eps!.Value.ToScalar();
        using var wd = o.weight_decay!.Value.ToScalar();
        using var mom = o.momentum!.Value.ToScalar();
        using var minusLr = (-o.LearningRate!.Value).ToScalar();
        foreach (var p in group.Parameters)
        {
            if (p.grad is not { } grad) continue;
            var s = (State)_state[p.Handle];
            s.step += 1;
            if (o.weight_decay.Value != 0) grad = grad.add(p, wd);
            s.square_avg.mul_(decay).addcmul_(grad, grad, keep);
            var avg = s.square_avg.sqrt().add_(eps, HeldScalars.One);
            if (o.momentum.Value > 0)
            {
                s.momentum_buffer.mul_(mom).addcdiv_(grad, avg, HeldScalars.One);
                p.add_(s.momentum_buffer, minusLr);
            }
            else p.addcdiv_(grad, avg, minusLr);
        }
    }, closure);
}

/// <summary>SGD (optional momentum without dampening, no Nesterov) with held Scalars.</summary>
internal sealed class HeldScalarSgd(IEnumerable<Parameter> parameters, double lr, double momentum, double weightDecay)
    : SGD(parameters, lr, momentum, dampening: 0, weight_decay: weightDecay, nesterov: false, maximize: false)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = group.Options;
        using var wd = o.weight_decay!.Value.ToScalar();
        using var mom = o.momentum!.Value.ToScalar();
        using var minusLr = (-o.LearningRate!.Value).ToScalar();
        foreach (var p in group.Parameters)
        {
            if (p.grad is not { } grad) continue;
            var s = (State)_state[p.Handle];
            if (o.weight_decay.Value != 0) grad = grad.add(p, wd);
            if (o.momentum.Value != 0)
            {
                if (s.momentum_buffer is null) s.momentum_buffer = grad.clone().detach().DetachFromDisposeScope();
                else s.momentum_buffer.mul_(mom).add_(grad, HeldScalars.One); // dampening 0: 1 - dampening = 1
                grad = s.momentum_buffer;
            }
            p.add_(grad, minusLr);
        }
    }, closure);
}

/// <summary>Adam (no AMSGrad) with held Scalars.</summary>
internal sealed class HeldScalarAdam(IEnumerable<Parameter> parameters, double lr, double weightDecay)
    : Adam(parameters, lr, weight_decay: weightDecay, amsgrad: false, maximize: false)
{
    public override Tensor step(Func<Tensor>? closure = null) => _step<ParamGroup>(group =>
    {
        var o = group.Options;
        double beta1 = o.beta1!.Value, beta2 = o.beta2!.Value;
        using var b1 = beta1.ToScalar();
        using var b2 = beta2.ToScalar();
        using var keep1 = (1 - beta1).ToScalar();
        using var keep2 = (1 - beta2).ToScalar();
        using var eps = o.eps!.Value.ToScalar();
        using var wd = o.weight_decay!.Value.ToScalar();
        foreach (var p in group.Parameters)
        {
            if (p.grad is not { } grad) continue;
            var s = (State)_state[p.Handle];
            s.step += 1;
            double correction1 = 1 - Math.Pow(beta1, s.step), correction2 = 1 - Math.Pow(beta2, s.step);
            if (o.weight_decay.Value != 0) grad = grad.add(p, wd);
            s.exp_avg.mul_(b1).add_(grad, keep1);
            s.exp_avg_sq.mul_(b2).addcmul_(grad, grad.conj(), keep2);
            using var rootCorrection2 = Math.Sqrt(correction2).ToScalar();
            using var minusStep = (-o.LearningRate!.Value / correction1).ToScalar();
            var denom = s.exp_avg_sq.sqrt().div(rootCorrection2).add_(eps, HeldScalars.One);
            p.addcdiv_(s.exp_avg, denom, minusStep);
        }
    }, closure);
}
