using System.Runtime.CompilerServices;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// A network prepared to run as <see cref="ComputeOptions"/> asks: its input in channels-last order, and, where that
/// needs a copy (BatchNorm folded, bfloat16), a replica of the network kept in step with the caller's network (the
/// master, whose fp32 weights the optimizer updates). Logits come back in the input's type (fp32), so losses, argmax
/// and epsilon steps are computed exactly as on the plain path. The one place layouts, precisions and folding are applied.
/// </summary>
/// <remarks>
/// The replica is a snapshot: after the master's weights change (a training step, loaded weights), call
/// <see cref="Sync"/>; attacks, evaluators and the trainer get theirs through a cache that syncs whenever they take
/// hold of it (one thread at a time runs passes on a replica). A folded
/// replica only runs in evaluation mode (BatchNorm's batch statistics are gone). In a reduced-precision replica the
/// BatchNorm layers keep fp32 weights and statistics (libtorch normalises bfloat16 activations with them), as PyTorch's
/// autocast does.
/// </remarks>
public sealed class ComputeModel : Module<Tensor, Tensor>
{
    // Per master: the prepared networks (one per options and mode), built once and synced on each use.
    private static readonly ConditionalWeakTable<Module, List<ComputeModel>> Cache = new();
    private readonly Module<Tensor, Tensor> master;
    private readonly Module<Tensor, Tensor>? replica;
    private readonly ScalarType _dtype;
    // One caller at a time runs passes on a replica: a sync writes its weights in place, which would invalidate the
    // autograd graph of a pass running on another thread (libtorch aborts the process on that). Reentrant per thread.
    private readonly object _gate = new();
    private int _holds;
    private bool _syncOnHold;
    private static long _nextId;
    private readonly long _id = Interlocked.Increment(ref _nextId);
    // The run-time check (FastPathCheck): its verdict per batch shape, the layers it put in the plain layout (with the
    // hooks that do it) and whether the last pass ran on the replica (a plain-path fallback runs on the master).
    private readonly Dictionary<string, FastPathVerdict> _verdicts = new();
    private readonly HashSet<string> _plainLayoutLayers = new();
    private bool _lastPassOnReplica;
    private string? _architecture;
    private readonly Func<Module<Tensor, Tensor>>? _replicaFactory;

    /// <summary>The networks a pass may run on: the master, and the replica when there is one (for hooks that must see either).</summary>
    internal IEnumerable<Module<Tensor, Tensor>> Networks => replica is null ? new[] { master } : new[] { master, replica };

    private ComputeModel(Module<Tensor, Tensor> model, ComputeOptions options, bool evaluationOnly, Func<Module<Tensor, Tensor>>? replicaFactory)
        : base(nameof(ComputeModel))
    {
        master = model;
        Options = options;
        _replicaFactory = replicaFactory;
        EvaluationOnly = evaluationOnly;
        _dtype = options.Precision switch
        {
            ComputePrecision.BFloat16 => ScalarType.BFloat16,
            ComputePrecision.Float16 => ScalarType.Float16,
            _ => ScalarType.Float32,
        };
        bool reduced = _dtype != ScalarType.Float32;
        bool fold = evaluationOnly && options.FoldBatchNorm && BatchNormFolding.HasFoldable(model)
            && (replicaFactory is not null || ModelReplicas.CanCreate(model));
        if (reduced || fold)
        {
            replica = replicaFactory?.Invoke() ?? ModelReplicas.TryCreate(model)
                ?? throw new NotSupportedException(
                    $"{options.Precision} runs on a copy of the network, and the library cannot rebuild this one ({model.GetType().Name}). " +
                    "Use a network the library built (ModelSpec, ModelIO.Load or Import), pass a replicaFactory that builds the same architecture " +
                    "(ComputeModel.Create), or use Precision = Float32.");
            var first = model.parameters().FirstOrDefault();
            if (first is not null) replica.to(first.device);
            // Float32 precision keeps the master's own type (a float64 network stays float64).
            if (!reduced && first is not null) _dtype = first.dtype;
            if (replica.parameters().FirstOrDefault()?.dtype != _dtype) replica.to(_dtype);
            if (reduced) foreach (var m in replica.modules().OfType<BatchNorm2d>()) m.to(ScalarType.Float32);
            // Evaluation passes need gradients for the input only; a training replica hands its gradients to the master.
            foreach (var p in replica.parameters()) p.requires_grad_(!evaluationOnly);
            replica.train(!evaluationOnly && model.training);
            IsFolded = fold;
            register_module("replica", replica);
            Sync();
        }
        // The master is not registered: this wrapper never owns, moves or saves it.
        if (FastPathCheck.InjectedFaultLayer is { } faulty) InjectFault(faulty);
    }

    /// <summary>How the network runs.</summary>
    public ComputeOptions Options { get; }

    /// <summary>The caller's network.</summary>
    public Module<Tensor, Tensor> Master => master;

    /// <summary>True when built for evaluation-mode passes only (folding allowed, no parameter gradients).</summary>
    public bool EvaluationOnly { get; }

    /// <summary>True when passes run on a replica with each BatchNorm folded into its convolution.</summary>
    public bool IsFolded { get; }

    /// <summary>True when passes run on a replica (folded or reduced precision) rather than on the master.</summary>
    public bool HasReplica => replica is not null;

    /// <summary>
    /// Wraps <paramref name="model"/> to run as <paramref name="options"/> asks (a <see cref="ComputeModel"/> is returned as is).
    /// </summary>
    /// <param name="model">The network (the master).</param>
    /// <param name="options">How to run it; null is <see cref="ComputeOptions.Default"/>.</param>
    /// <param name="evaluationOnly">True when every pass runs in evaluation mode (attacks, scoring): allows BatchNorm folding.</param>
    /// <param name="replicaFactory">Builds an untrained network of the same architecture, for a custom module the library
    /// cannot rebuild; only needed for bfloat16/float16 or folding.</param>
    public static ComputeModel Create(Module<Tensor, Tensor> model, ComputeOptions? options = null, bool evaluationOnly = true,
        Func<Module<Tensor, Tensor>>? replicaFactory = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        OneDnn.EnsureDecided(); // before the first convolution: oneDNN off on a CPU whose cache sizes it would divide by zero
        if (model is ComputeModel prepared) return prepared;
        return new ComputeModel(model, options ?? ComputeOptions.Default, evaluationOnly, replicaFactory);
    }

    /// <summary>
    /// The prepared network for <paramref name="model"/>, cached per master (the replica is built once) and synced with
    /// the master's current weights whenever a caller takes hold of it (<see cref="HoldFor"/>). What attacks, evaluators
    /// and the trainer use.
    /// Channels-last and folding apply only to networks the library built: a custom module may <c>view()</c> its input,
    /// which needs the contiguous layout, so it runs as it is (or fails clearly when bfloat16 needs a replica).
    /// </summary>
    internal static ComputeModel? For(Module<Tensor, Tensor> model, ComputeOptions options, bool evaluationOnly)
    {
        NativeAllocator.EnsureTuned(); // the raw tensor API may never pass an entry point that calls TorchBackend.EnsureLoaded
        OneDnn.EnsureDecided(); // likewise: before the first convolution
        if (model is ComputeModel ready) return ready;
        bool known = ModelReplicas.CanCreate(model);
        if (options.Precision == ComputePrecision.Float32 && !(known && (options.ChannelsLast || options.FoldBatchNorm))) return null;
        // Replicas and folded weights are shared with attacks, which need autograd: never make them as inference tensors.
        using var normal = inference_mode(false);
        lock (Cache)
        {
            var list = Cache.GetOrCreateValue(model);
            var cached = list.FirstOrDefault(c => c.Options == options && c.EvaluationOnly == evaluationOnly);
            if (cached is not null) return cached;
            // Cached networks are synced whenever a caller takes hold of them (Hold), so they follow the master.
            var created = new ComputeModel(model, options, evaluationOnly, null) { _syncOnHold = true };
            list.Add(created);
            return created;
        }
    }

    /// <summary>
    /// Holds <paramref name="model"/> (when it is a prepared network with a replica) for the caller's passes until the
    /// result is disposed: other threads wait, and the outermost hold of a network from the cache first syncs its
    /// replica with the master's current weights. Attacks, evaluators and the trainer hold what they run.
    /// </summary>
    internal static Hold HoldFor(Module<Tensor, Tensor> model) => model is ComputeModel { replica: not null } c ? c.Take() : default;

    /// <summary>Holds several prepared networks, always in the same order (no two callers can wait on each other).</summary>
    internal static IDisposable HoldAll(IEnumerable<Module<Tensor, Tensor>> models)
    {
        var holds = models.OfType<ComputeModel>().Where(c => c.replica is not null).Distinct().OrderBy(c => c._id).Select(c => c.Take()).ToList();
        return new Holds(holds);
    }

    private Hold Take()
    {
        Monitor.Enter(_gate);
        try
        {
            if (_holds == 0 && _syncOnHold) Sync();
        }
        catch
        {
            Monitor.Exit(_gate);
            throw;
        }
        _holds++;
        return new Hold(this);
    }

    /// <summary>A hold on a prepared network (see <see cref="HoldFor"/>); default: nothing held.</summary>
    internal readonly struct Hold : IDisposable
    {
        private readonly ComputeModel? _model;

        internal Hold(ComputeModel model) => _model = model;

        /// <summary>Releases the hold.</summary>
        public void Dispose()
        {
            if (_model is null) return;
            _model._holds--;
            Monitor.Exit(_model._gate);
        }
    }

    private sealed class Holds(List<Hold> holds) : IDisposable
    {
        public void Dispose()
        {
            for (int i = holds.Count - 1; i >= 0; i--) holds[i].Dispose();
        }
    }

    /// <summary>
    /// Copies the master's current weights and statistics into the replica (cast, folded). No-op without a replica.
    /// Call it after changing the master's weights; do not call it while another thread runs passes on this network.
    /// </summary>
    public void Sync()
    {
        if (replica is null) return;
        using var normal = inference_mode(false);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var target = replica.state_dict();
        foreach (var (name, value) in master.state_dict())
        {
            if (!target.TryGetValue(name, out var r))
                throw new InvalidOperationException($"The replica has no '{name}': the replica factory must build the same architecture as the network.");
            r.copy_(value);
        }
        if (IsFolded) BatchNormFolding.Fold(master, replica, _dtype);
    }

    /// <summary>
    /// The network a fast pass runs on (the replica, in the master's mode, or the master). Passes go through
    /// <see cref="Route"/>, which checks the fast path first; read logits through <see cref="Output"/>.
    /// </summary>
    internal Module<Tensor, Tensor> Network
    {
        get
        {
            if (replica is null) return master;
            // The master's mode decides (attacks, evaluators and the trainer set it); the replica follows.
            bool trainingPass = master.training;
            if (trainingPass && EvaluationOnly)
                throw new InvalidOperationException("This prepared network runs in evaluation mode only (BatchNorm folded, no parameter gradients); use one made for training-mode passes.");
            if (replica.training != trainingPass) replica.train(trainingPass);
            return replica;
        }
    }

    /// <summary>
    /// The network and input of a pass on <paramref name="x"/>: the fast path as the options ask, once it has been
    /// checked against the plain path at this batch shape (<see cref="FastPathCheck"/>: first pass at a shape, then
    /// remembered), or the master on the plain input where the check sent this shape to the plain path.
    /// </summary>
    internal (Module<Tensor, Tensor> Network, Tensor Input) Route(Tensor x)
    {
        if (NeedsCheck(x) && VerdictFor(x).Outcome == FastPathOutcome.PlainPath)
        {
            _lastPassOnReplica = false;
            return (master, x);
        }
        var network = Network;
        _lastPassOnReplica = replica is not null;
        return (network, Input(x));
    }

    /// <summary>The verdict of the run-time check for <paramref name="x"/>'s shape, running the check on first sight.</summary>
    internal FastPathVerdict VerdictFor(Tensor x)
    {
        lock (_gate)
        {
            string key = FastPathCheck.Key(Architecture, x, Options, master.training);
            if (_verdicts.TryGetValue(key, out var verdict)) return verdict;
            if (FastPathCheck.TryRecall(key, out verdict))
                RunInPlainLayout(verdict.PlainLayoutLayers); // the same architecture seen through another master
            else
                verdict = FastPathCheck.Run(this, x, key);
            _verdicts[key] = verdict;
            return verdict;
        }
    }

    /// <summary>True when a pass on <paramref name="x"/> would differ from the plain path's kernels and is to be checked.</summary>
    private bool NeedsCheck(Tensor x) =>
        Options.VerifyFastPath && (replica is not null || (Options.ChannelsLast && x.dim() == 4 && x.shape[1] >= 3));

    /// <summary>The master's type and a digest of its parameter names and shapes: what decides which kernels run.</summary>
    internal string Architecture => _architecture ??= Describe(master);

    private static string Describe(Module<Tensor, Tensor> model)
    {
        var inner = model is PixelRangeAdapter adapter ? adapter.Network : model;
        ulong hash = 14695981039346656037;
        long count = 0;
        foreach (var (name, p) in model.named_parameters())
        {
            count += p.numel();
            foreach (char c in name + string.Join(",", p.shape) + ";") hash = (hash ^ c) * 1099511628211;
        }
        return $"{inner.GetType().Name} ({count:N0} parameters, #{hash % 0xFFFFFF:x6})";
    }

    /// <summary>
    /// Runs the named convolutions of <see cref="Network"/> in the plain (NCHW) layout: their channels-last input is made
    /// contiguous before them and their output is put back in channels-last order after them. What
    /// <see cref="FastPathCheck"/> does with the layers that disagree.
    /// </summary>
    internal void RunInPlainLayout(IEnumerable<string> layers)
    {
        var modules = (replica ?? master).named_modules().ToDictionary(m => m.name, m => m.module);
        foreach (var name in layers)
        {
            if (_plainLayoutLayers.Contains(name) || !modules.TryGetValue(name, out var module) || module is not Module<Tensor, Tensor> layer) continue;
            var wasChannelsLast = new ThreadLocal<bool>();
            // The hooks stay for the network's lifetime: the layer runs in the plain layout for every later pass.
            layer.register_forward_pre_hook((_, input) =>
            {
                wasChannelsLast.Value = FastPathCheck.IsChannelsLast(input);
                return wasChannelsLast.Value ? input.contiguous() : input;
            });
            layer.register_forward_hook((_, _, output) => wasChannelsLast.Value ? ToChannelsLast(output) : output);
            _plainLayoutLayers.Add(name);
        }
    }

    /// <summary>
    /// The same network at the same precision in the plain layout, unfolded and unchecked: the reference for what a
    /// reduced precision alone changes (<see cref="FastPathCheck"/>). The caller disposes it.
    /// </summary>
    internal ComputeModel PlainLayoutTwin()
    {
        var twin = new ComputeModel(master, Options with { ChannelsLast = false, FoldBatchNorm = false, VerifyFastPath = false }, EvaluationOnly, _replicaFactory);
        if (twin.replica is not null) twin.replica.train(master.training);
        return twin;
    }

    /// <summary>Test-only: the convolutions named <paramref name="suffix"/> compute a wrong result on channels-last input.</summary>
    private void InjectFault(string suffix)
    {
        bool anyLayout = FastPathCheck.InjectedFaultAnyLayout && replica is not null;
        foreach (var (name, module) in (replica ?? master).named_modules())
            if (FastPathCheck.IsConvolution(module) && module is Module<Tensor, Tensor> layer && name.EndsWith(suffix, StringComparison.Ordinal))
                layer.register_forward_hook((_, input, output) => anyLayout || FastPathCheck.IsChannelsLast(input) ? output.Times(-0.5).Plus(0.1) : output);
    }

    /// <summary><paramref name="x"/> as <see cref="Network"/> takes it: the replica's type, channels-last when asked.</summary>
    internal Tensor Input(Tensor x)
    {
        var input = replica is not null && x.is_floating_point() && x.dtype != _dtype ? x.to(_dtype) : x;
        return Options.ChannelsLast ? ToChannelsLast(input) : input;
    }

    /// <summary>Logits in the type of the caller's input <paramref name="like"/> (fp32).</summary>
    internal static Tensor Output(Tensor logits, Tensor like) =>
        logits.dtype == like.dtype || !like.is_floating_point() ? logits : logits.to(like.dtype);

    /// <summary>
    /// After a training pass on a replica: its parameter gradients, in the master's type, become the master's (the
    /// optimizer updates the fp32 master weights), and its BatchNorm statistics the master's. No-op without a replica.
    /// </summary>
    internal void CopyGradientsToMaster()
    {
        if (replica is null || !_lastPassOnReplica) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var replicaParameters = replica.named_parameters().ToDictionary(t => t.name, t => t.parameter);
        foreach (var (name, p) in master.named_parameters())
        {
            var g = replicaParameters[name].grad;
            if (g is null) continue;
            if (p.grad is null) p.grad = g.to(p.dtype).detach().DetachFromDisposeScope();
            else p.grad.copy_(g);
            replicaParameters[name].grad = null;
        }
        var replicaBuffers = replica.named_buffers().ToDictionary(t => t.name, t => t.buffer);
        foreach (var (name, b) in master.named_buffers()) b.copy_(replicaBuffers[name]);
    }

    /// <summary>Runs the network on <paramref name="x"/>; logits in <paramref name="x"/>'s type.</summary>
    public override Tensor forward(Tensor x)
    {
        var (network, input) = Route(x);
        return Output(network.call(input), x);
    }

    /// <summary>
    /// <paramref name="x"/> in channels-last memory order when it is an image batch [N, C, H, W] with C &gt;= 3 (libtorch
    /// picks its channels-last convolution kernels from the strides); other tensors unchanged.
    /// </summary>
    public static Tensor ToChannelsLast(Tensor x) =>
        x.dim() == 4 && x.shape[1] >= 3 ? x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2) : x;

    /// <inheritdoc/>
    public override string ToString() => $"{master.GetType().Name} ({Options})";
}
