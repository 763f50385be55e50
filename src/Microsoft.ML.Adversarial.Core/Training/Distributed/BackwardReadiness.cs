using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Training.Distributed;

/// <summary>
/// Learns, during a backward pass, when a parameter's gradient is final, so that its bucket can be reduced while the
/// rest of the backward pass runs. TorchSharp 0.107 has no tensor or module backward hooks; it has forward pre-hooks
/// (run when a module is invoked with <c>call()</c>) and custom autograd functions. While armed, a pre-hook on every
/// <c>Module&lt;Tensor, Tensor&gt;</c> that owns parameters passes the module's input through an identity function
/// (<see cref="ReadyMarker"/>) whose backward runs once the gradient with respect to that input is complete, that is
/// after every node of the module's own backward. libtorch's engine runs the ready node with the highest sequence
/// number first and gives the AccumulateGrad nodes that write parameter gradients the highest of all, and every node of
/// the module's forward was created after the marker's, so by the time the marker's backward runs the module's
/// parameter gradients are accumulated (checked by <c>OverlappedAllreduceTests.MarkersFireAfterTheirParametersGradientsAreFinal</c>).
/// </summary>
/// <remarks>
/// A parameter counts as final when every marker of the modules that own it (a module called twice, a parameter
/// shared by two modules) has fired. One whose module ran on an input that needs no gradient (the network's first
/// layer), ran without <c>call()</c>, or never ran is never reported: its bucket is reduced after the backward pass,
/// as every bucket is without overlap. A parameter used outside the modules that own it (a network reading a child's
/// weight directly) would be reported early; the library's networks do not do that.
/// </remarks>
internal sealed class BackwardReadiness : IDisposable
{
    private readonly List<Action> _removers = new();
    private readonly List<int[]> _moduleParameters = new(); // per hooked module: the indices of the parameters it owns
    private readonly int[] _pending;
    private readonly bool[] _seen, _blocked, _ready;
    private readonly Action<int> _parameterReady;
    private bool _armed, _listening;
    private long _pass;
    private Exception? _error;

    /// <param name="model">The network whose modules get the pre-hooks.</param>
    /// <param name="parameters">The parameters watched; <paramref name="parameterReady"/> receives indices into it.</param>
    /// <param name="parameterReady">Called (on the backward pass's thread) once per pass for each parameter whose gradient is final.</param>
    public BackwardReadiness(nn.Module model, IReadOnlyList<Parameter> parameters, Action<int> parameterReady)
    {
        _parameterReady = parameterReady;
        var index = new Dictionary<IntPtr, int>();
        for (int i = 0; i < parameters.Count; i++) index.TryAdd(parameters[i].Handle, i);
        _pending = new int[parameters.Count];
        _seen = new bool[parameters.Count];
        _blocked = new bool[parameters.Count];
        _ready = new bool[parameters.Count];
        var modules = new List<nn.Module> { model };
        var known = new HashSet<nn.Module>(ReferenceEqualityComparer.Instance) { model };
        foreach (var m in model.modules())
            if (known.Add(m)) modules.Add(m);
        foreach (var module in modules)
        {
            if (module is not nn.Module<Tensor, Tensor> hookable) continue;
            var own = module.parameters(recurse: false).Select(p => index.TryGetValue(p.Handle, out int i) ? i : -1).Where(i => i >= 0).ToArray();
            if (own.Length == 0) continue;
            int id = _moduleParameters.Count;
            _moduleParameters.Add(own);
            var remover = hookable.register_forward_pre_hook((_, input) => Enter(id, input));
            _removers.Add(remover.remove);
        }
    }

    /// <summary>Modules watched (those that own parameters and take one tensor).</summary>
    public int HookedModules => _moduleParameters.Count;

    /// <summary>Starts a pass: the next forward pass places markers, and its backward pass reports parameters.</summary>
    public void Arm()
    {
        _pass++;
        Array.Clear(_pending);
        Array.Clear(_seen);
        Array.Clear(_blocked);
        Array.Clear(_ready);
        _error = null;
        _armed = true;
        _listening = true;
    }

    /// <summary>After the forward pass: no more markers (passes that follow, if any, are not watched).</summary>
    public void EndForward() => _armed = false;

    /// <summary>After the backward pass: reports nothing more; rethrows an error a marker met.</summary>
    public void Stop()
    {
        _armed = false;
        _listening = false;
        if (_error is { } e)
        {
            _error = null;
            throw new InvalidOperationException($"Watching the backward pass for finished gradients failed: {e.Message}", e);
        }
    }

    /// <summary>Whether parameter <paramref name="i"/> was reported final in this pass.</summary>
    public bool IsReported(int i) => _ready[i];

    private Tensor Enter(int id, Tensor input)
    {
        if (!_armed) return input;
        var own = _moduleParameters[id];
        if (!input.requires_grad)
        {
            // Nothing on this input's side of the graph would tell when the module's backward is over.
            foreach (int i in own) _blocked[i] = true;
            return input;
        }
        foreach (int i in own)
        {
            _pending[i]++;
            _seen[i] = true;
        }
        long pass = _pass;
        return ReadyMarker.apply(input, (Action)(() => Fire(id, pass)));
    }

    private void Fire(int id, long pass)
    {
        // Runs inside libtorch's backward (called from native code): an exception must not cross it.
        try
        {
            if (pass != _pass || !_listening) return;
            foreach (int i in _moduleParameters[id])
                if (--_pending[i] == 0 && _seen[i] && !_blocked[i] && !_ready[i])
                {
                    _ready[i] = true;
                    _parameterReady(i);
                }
        }
        catch (Exception e)
        {
            _error ??= e;
        }
    }

    /// <summary>Removes the hooks.</summary>
    public void Dispose()
    {
        foreach (var remove in _removers) remove();
        _removers.Clear();
    }

    /// <summary>Identity whose backward calls the action saved with it, then passes the gradient on unchanged.</summary>
    private sealed class ReadyMarker : autograd.SingleTensorFunction<ReadyMarker>
    {
        public override string Name => "GradientReadyMarker";

        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            ctx.save_data("fire", vars[1]);
            return ((Tensor)vars[0]).alias();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            ((Action)ctx.get_data("fire"))();
            return new List<Tensor> { gradOutput, null! };
        }
    }
}
