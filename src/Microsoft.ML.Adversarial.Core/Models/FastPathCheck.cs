using System.Collections.Concurrent;
using System.Diagnostics;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>What the run-time check of a fast path decided for one network, batch shape, options and CPU.</summary>
public enum FastPathOutcome
{
    /// <summary>The fast path agrees with the plain path: it runs as asked.</summary>
    Agrees,
    /// <summary>Some convolutions disagreed on channels-last input: they run in the plain (NCHW) layout, the rest as asked.</summary>
    LayersInPlainLayout,
    /// <summary>The fast path disagreed and per-layer fallback did not cure it: the plain path runs.</summary>
    PlainPath,
}

/// <summary>One verdict of <see cref="FastPathCheck"/>, with the figures it was judged on.</summary>
/// <param name="Network">The network's type and a digest of its parameter names and shapes.</param>
/// <param name="Shape">The batch shape checked, e.g. <c>[8, 3, 299, 299]</c>.</param>
/// <param name="Options">The options asked for.</param>
/// <param name="Training">True for a training-mode pass (parameter gradients compared too).</param>
/// <param name="Outcome">What runs from now on.</param>
/// <param name="PlainLayoutLayers">The convolutions that run in the plain layout (empty unless <see cref="FastPathOutcome.LayersInPlainLayout"/>).</param>
/// <param name="FirstLogitDifference">Largest logit difference of the fast path as asked, relative to the largest plain logit.</param>
/// <param name="FirstGradientDifference">Relative L2 difference of its input gradient.</param>
/// <param name="LogitDifference">The same for what runs now.</param>
/// <param name="GradientDifference">The same for what runs now.</param>
/// <param name="ParameterGradientDifference">Relative L2 difference of the parameter gradients (training passes; else NaN).</param>
/// <param name="RoundingFloor">The plain path against itself on the input moved by a few ulps (same three measures): fp32 rounding at this shape.</param>
/// <param name="Cost">Time the check took (both passes, and the layer search when needed).</param>
/// <param name="Cpu">The CPU it ran on (<see cref="FastPathCheck.Cpu"/>).</param>
public sealed record FastPathVerdict(string Network, string Shape, ComputeOptions Options, bool Training, FastPathOutcome Outcome,
    IReadOnlyList<string> PlainLayoutLayers, double FirstLogitDifference, double FirstGradientDifference,
    double LogitDifference, double GradientDifference, double ParameterGradientDifference, (double Logits, double Gradient, double Parameters) RoundingFloor,
    TimeSpan Cost, string Cpu)
{
    /// <summary>True when the fast path ran as asked.</summary>
    public bool Agrees => Outcome == FastPathOutcome.Agrees;

    /// <summary>One line for logs and benchmark rows.</summary>
    public override string ToString() => Outcome switch
    {
        FastPathOutcome.Agrees => $"agrees with plain (logits {FirstLogitDifference:E1}, input gradient {FirstGradientDifference:E1})",
        FastPathOutcome.LayersInPlainLayout => $"disagreed (logits {FirstLogitDifference:E1}); {PlainLayoutLayers.Count} layer(s) in plain layout: {string.Join(", ", PlainLayoutLayers)}",
        _ => $"disagreed (logits {FirstLogitDifference:E1}, input gradient {FirstGradientDifference:E1}); plain path",
    } + (Training ? $"; parameter gradients {ParameterGradientDifference:E1}" : "") +
        $" [rounding floor: logits {RoundingFloor.Logits:E1}, input gradient {RoundingFloor.Gradient:E1}" +
        (Training ? $", parameter gradients {RoundingFloor.Parameters:E1}]" : "]");
}

/// <summary>
/// The run-time check of every fast path (channels-last, BatchNorm folding, bfloat16): library kernels (oneDNN) compute
/// wrong results for some shapes on some CPUs (docs/performance.md, "A oneDNN defect"), so no fast path's results are
/// used until one batch of the caller's own shape has given the same logits and gradients as the plain path on this
/// machine. <see cref="ComputeModel"/> calls it before the first pass at each batch shape.
/// </summary>
public static class FastPathCheck
{
    // How far the fast path may be from the plain path. fp32: channels-last and folding only reorder float additions, so
    // they differ from the plain path about as much as the plain path differs from itself on an input moved by a few
    // ulps (the rounding floor, measured on each check: ~1e-7 for logits and ~2e-3 for input gradients of full-width
    // Inception v3 in evaluation mode, up to ~5e-2 for gradients of training passes whose BatchNorm normalises a small
    // batch). Allowed: 8 times that floor, at least the base below, at most the cap. The oneDNN defect gives
    // differences of order 1.
    // Training passes: libtorch's channels-last BatchNorm training kernels are less precise than its NCHW ones (gradients
    // twice as far from float64 on full-width Inception v3: 6e-2 against 3e-2), hence their own base.
    private const double Fp32LogitBase = 1e-3, Fp32GradientBase = 0.02, Fp32TrainingBase = 0.1, ReducedLogitBase = 0.1, ReducedGradientBase = 0.5;
    private const double FloorFactor = 8, LogitCap = 0.1, GradientCap = 0.3;
    // bf16/fp16: the floor is the reduced precision's own error in the plain layout (against fp32); the fast levers
    // may add as much again. Random deep networks in training mode reach 0.2 (logits) in bf16 by rounding alone.
    private const double ReducedFloorFactor = 2, ReducedCap = 1.0;
    // One layer on its own input, fast layout vs NCHW, same precision: outputs (relative L2; ~1e-6 in fp32) and input
    // gradients (~5e-3 in fp32 through the layer's ReLU kinks).
    private const double Fp32LayerTolerance = 1e-3, Fp32LayerGradientTolerance = 0.05;
    private const double ReducedLayerTolerance = 0.03, ReducedLayerGradientTolerance = 0.3;

    private static readonly ConcurrentDictionary<string, FastPathVerdict> Verdicts = new();
    private static readonly Lazy<string> CpuText = new(DescribeCpu);

    /// <summary>
    /// Called with each warning line (a fast path that disagreed, or oneDNN switched off for this CPU: <see cref="OneDnn"/>);
    /// by default the line goes to standard error.
    /// </summary>
    public static event Action<string>? Warned;

    /// <summary>Every verdict of this process (in no particular order).</summary>
    public static IReadOnlyList<FastPathVerdict> All => Verdicts.Values.ToList();

    /// <summary>The CPU the checks run on: model name and the vector extensions that decide oneDNN's kernels.</summary>
    public static string Cpu => CpuText.Value;

    /// <summary>
    /// Test-only fault injection: convolution layers whose module name ends with this text return a perturbed output (and so a
    /// perturbed input gradient) whenever their input is in channels-last layout, as the oneDNN defect does. Set before
    /// the network is prepared; null turns it off.
    /// </summary>
    internal static string? InjectedFaultLayer { get; set; }

    /// <summary>Test-only: the injected fault hits the replica's layer in any layout (a fault the plain layout cannot cure).</summary>
    internal static bool InjectedFaultAnyLayout { get; set; }

    /// <summary>
    /// The verdict for running <paramref name="model"/> as <paramref name="options"/> ask on batches shaped like
    /// <paramref name="x"/> (the remembered one, or a check now): what benchmarks print beside each speed, so that no
    /// speed counts for a path whose outputs differ from the plain path's.
    /// </summary>
    /// <param name="model">The network (the master).</param>
    /// <param name="options">The compute options; checked whatever their <see cref="ComputeOptions.VerifyFastPath"/> says.</param>
    /// <param name="x">A batch of the shape to check.</param>
    /// <param name="training">True for training-mode passes (parameter gradients compared too).</param>
    public static FastPathVerdict Verify(Module<Tensor, Tensor> model, ComputeOptions options, Tensor x, bool training = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        var master = model is ComputeModel given ? given.Master : model; // never dispose the caller's prepared network
        using var mode = ModelMode.Set(master, training);
        using var prepared = ComputeModel.Create(master, options with { VerifyFastPath = true }, evaluationOnly: !training);
        return prepared.VerdictFor(x);
    }

    /// <summary>Forgets every verdict (tests that inject faults).</summary>
    internal static void Forget() => Verdicts.Clear();

    internal static string Key(string network, Tensor x, ComputeOptions options, bool training) =>
        $"{network}|{Shape(x)}|{x.dtype}|{x.device}|{options}|{(training ? "train" : "eval")}";

    internal static bool TryRecall(string key, out FastPathVerdict verdict) => Verdicts.TryGetValue(key, out verdict!);

    internal static string Shape(Tensor x) => $"[{string.Join(", ", x.shape)}]";

    /// <summary>
    /// Checks <paramref name="model"/>'s fast path on <paramref name="x"/> against the plain path, applies the fallback
    /// it needs (layers in plain layout, or the plain path) and remembers the verdict under <paramref name="key"/>.
    /// </summary>
    internal static FastPathVerdict Run(ComputeModel model, Tensor x, string key)
    {
        var watch = Stopwatch.StartNew();
        bool training = model.Master.training;
        bool reduced = model.Options.Precision != ComputePrecision.Float32;
        var (logits, gradient, parameters, floor) = Compare(model, x, training);
        double firstLogits = logits, firstGradient = gradient;
        double Tolerance(double fp32Base, double reducedBase, double cap, double floorValue) => reduced
            ? Math.Min(ReducedCap, Math.Max(reducedBase, ReducedFloorFactor * floorValue))
            : Math.Min(cap, Math.Max(fp32Base, FloorFactor * floorValue));
        double logitTolerance = Tolerance(training ? Fp32TrainingBase / 10 : Fp32LogitBase, ReducedLogitBase, LogitCap, floor.Logits); // training: 1e-2
        double gradientTolerance = Tolerance(Fp32GradientBase, ReducedGradientBase, GradientCap, floor.Gradient);
        double parameterTolerance = Tolerance(Fp32TrainingBase, ReducedGradientBase, GradientCap, floor.Parameters);
        // Training passes are judged on logits and parameter gradients (what a training step uses); their input gradient,
        // through BatchNorm's batch statistics, is reported only.
        bool Agree() => logits <= logitTolerance && (training ? !(parameters > parameterTolerance) : gradient <= gradientTolerance);

        var outcome = FastPathOutcome.Agrees;
        var layers = new List<string>();
        if (!Agree())
        {
            if (model.Options.ChannelsLast)
            {
                layers = DisagreeingConvolutions(model, x, reduced ? ReducedLayerTolerance : Fp32LayerTolerance,
                    reduced ? ReducedLayerGradientTolerance : Fp32LayerGradientTolerance);
                if (layers.Count > 0)
                {
                    model.RunInPlainLayout(layers);
                    (logits, gradient, parameters, _) = Compare(model, x, training);
                }
            }
            outcome = layers.Count > 0 && Agree() ? FastPathOutcome.LayersInPlainLayout : FastPathOutcome.PlainPath;
        }
        var verdict = new FastPathVerdict(model.Architecture, Shape(x), model.Options, training, outcome,
            outcome == FastPathOutcome.LayersInPlainLayout ? layers : Array.Empty<string>(),
            firstLogits, firstGradient, logits, gradient, parameters, floor, watch.Elapsed, Cpu);
        Verdicts[key] = verdict;
        if (outcome != FastPathOutcome.Agrees) Warn(verdict);
        return verdict;
    }

    private static void Warn(FastPathVerdict v)
    {
        string what = v.Outcome == FastPathOutcome.LayersInPlainLayout
            ? $"{string.Join(", ", v.PlainLayoutLayers)} gave wrong results on channels-last input (oneDNN kernels on this CPU); " +
              $"{(v.PlainLayoutLayers.Count == 1 ? "that layer runs" : "those layers run")} in the plain NCHW layout, the rest as asked"
            : "per-layer fallback did not make it agree; the plain path (fp32, NCHW, unfolded) runs instead";
        string line = $"WARNING: fast path ({v.Options}) of {v.Network} at {v.Shape}{(v.Training ? " (training)" : "")} disagreed with the plain path " +
            $"on {v.Cpu} (logits differ by {v.FirstLogitDifference:E1} relative, input gradient by {v.FirstGradientDifference:E1}): {what}. " +
            "Results now equal the plain path's. To choose yourself: ComputeOptions.Plain (CLI --compute plain), or " +
            "ComputeOptions { VerifyFastPath = false } (CLI --compute unchecked) to trust the kernels; ONEDNN_MAX_CPU_ISA=AVX2 in the environment picks other oneDNN kernels.";
        WarnLine(line);
    }

    /// <summary>
    /// The one route of the library's warnings about this CPU's kernels (a fast path that disagreed, oneDNN switched off):
    /// <see cref="Warned"/>'s handlers, or standard error when there are none.
    /// </summary>
    internal static void WarnLine(string line)
    {
        if (Warned is { } handlers) handlers(line);
        else Console.Error.WriteLine(line);
    }

    /// <summary>
    /// Fast path vs plain path on <paramref name="x"/>: largest logit difference relative to the largest plain logit,
    /// relative L2 difference of the input gradients and (training passes) of the parameter gradients; and the same three
    /// for the plain path against itself on <paramref name="x"/> moved by a few ulps (the rounding floor). The gradients
    /// are of <c>sum(logits * r)</c> for a fixed random <c>r</c>; BatchNorm statistics and the random stream are
    /// restored afterwards, so the check leaves no trace in the run.
    /// </summary>
    private static (double Logits, double Gradient, double Parameters, (double Logits, double Gradient, double Parameters) Floor) Compare(
        ComputeModel model, Tensor x, bool training)
    {
        using var normal = inference_mode(false);
        using var scope = NewDisposeScope();
        using var grad = enable_grad();
        var master = model.Master;
        var network = model.Network;
        var rng = get_rng_state();
        var buffers = master.buffers().Concat(network.buffers()).Distinct().Select(b => (b, b.detach().clone())).ToList();
        void Restore()
        {
            using (no_grad())
                foreach (var (b, saved) in buffers) b.copy_(saved);
        }
        try
        {
            var plain = Pass(master, master, x, t => t, rng, training);
            Restore();
            (double, double, double) floor;
            if (model.Options.Precision == ComputePrecision.Float32)
            {
                // fp32: the plain path on the batch moved by a few ulps.
                using var generator = new Generator(3, x.device);
                var nudged = x.detach() * rand(x.shape, generator: generator, device: x.device, dtype: x.dtype).Minus(0.5).Times(4 * 1.2e-7).Plus(1);
                floor = Differences(Pass(master, master, nudged, t => t, rng, training), plain, training);
            }
            else
            {
                // bf16/fp16: the reduced precision in the plain layout, unfolded (what the precision alone changes); the
                // fast levers are then judged by what they add to it.
                using var reducedPlain = model.PlainLayoutTwin();
                floor = Differences(Pass(reducedPlain.Network, master, x, reducedPlain.Input, rng, training), plain, training);
            }
            Restore();
            var fast = Pass(network, master, x, model.Input, rng, training);
            var (logits, gradient, parameters) = Differences(fast, plain, training);
            return (logits, gradient, parameters, floor);
        }
        finally
        {
            Restore();
            set_rng_state(rng);
        }
    }

    private static (double Logits, double Gradient, double Parameters) Differences(
        (Tensor Logits, Tensor Gradient, Tensor[]? Parameters) a, (Tensor Logits, Tensor Gradient, Tensor[]? Parameters) b, bool training)
    {
        double logits = (a.Logits - b.Logits).abs().max().item<double>() / Math.Max(b.Logits.abs().max().item<double>(), 1e-300);
        double gradient = RelativeL2(new[] { a.Gradient }, new[] { b.Gradient });
        double parameters = training ? RelativeL2(a.Parameters!, b.Parameters!) : double.NaN;
        return (Finite(logits), Finite(gradient), training ? Finite(parameters) : double.NaN);
    }

    private static double Finite(double d) => double.IsFinite(d) ? d : double.PositiveInfinity;

    /// <summary>||a - b|| / ||b|| over all the tensors together, one parameter at a time (no copy of the whole network).</summary>
    private static double RelativeL2(IReadOnlyList<Tensor> a, IReadOnlyList<Tensor> b)
    {
        double difference = 0, reference = 0;
        for (int i = 0; i < a.Count; i++)
        {
            using var scope = NewDisposeScope();
            var b32 = b[i].to(ScalarType.Float32);
            double d = (a[i].to(ScalarType.Float32) - b32).norm().item<float>(), r = b32.norm().item<float>();
            difference += d * d;
            reference += r * r;
        }
        return Math.Sqrt(difference) / Math.Max(Math.Sqrt(reference), 1e-300);
    }

    /// <summary>
    /// One pass of <paramref name="network"/> on <paramref name="x"/> as <paramref name="input"/> lays it out: logits,
    /// the input gradient of <c>sum(logits * r)</c> and, for training passes, the parameter gradients in the order of
    /// <paramref name="master"/>'s parameter names.
    /// </summary>
    private static (Tensor Logits, Tensor Gradient, Tensor[]? Parameters) Pass(Module<Tensor, Tensor> network, Module<Tensor, Tensor> master,
        Tensor x, Func<Tensor, Tensor> input, Tensor rng, bool training)
    {
        set_rng_state(rng); // dropout draws the same masks in both passes
        var leaf = x.detach().clone().requires_grad_(true);
        var fed = input(leaf);
        Tensor logits;
        Tensor? aux = null;
        if (training && network is IAuxiliaryClassifier { HasAuxiliaryLogits: true } withAux)
            (logits, aux) = withAux.ForwardWithAuxiliary(fed);
        else
            logits = network.call(fed);
        logits = ComputeModel.Output(logits, x);
        using var generator = new Generator(20_251_207, logits.device);
        var loss = (logits * randn(logits.shape, generator: generator, device: logits.device)).sum();
        if (aux is not null)
        {
            aux = ComputeModel.Output(aux, x);
            loss = loss.Plus((aux * randn(aux.shape, generator: generator, device: aux.device)).sum());
        }
        var byName = training ? network.named_parameters().Where(p => p.parameter.requires_grad).ToDictionary(p => p.name, p => p.parameter) : null;
        var names = training ? master.named_parameters().Select(p => p.name).Where(byName!.ContainsKey).ToList() : new List<string>();
        var inputs = new List<Tensor> { leaf };
        inputs.AddRange(names.Select(n => (Tensor)byName![n]));
        var grads = autograd.grad(new[] { loss }, inputs, allow_unused: true);
        var parameters = training
            ? names.Select((_, i) => grads[i + 1] is { IsInvalid: false } g ? g : zeros_like(inputs[i + 1])).ToArray()
            : null;
        return (logits.detach().to(ScalarType.Float64), grads[0], parameters);
    }

    /// <summary>
    /// The convolutions of the fast network whose output or input gradient on the channels-last input they get differs
    /// from the same convolution on the same input in NCHW layout (found by recording each one's input on a pass).
    /// </summary>
    private static List<string> DisagreeingConvolutions(ComputeModel model, Tensor x, double tolerance, double gradientTolerance)
    {
        using var normal = inference_mode(false);
        using var scope = NewDisposeScope();
        var network = model.Network;
        var rng = get_rng_state();
        var buffers = network.buffers().Select(b => (b, b.detach().clone())).ToList();
        var seen = new List<(string Name, Module<Tensor, Tensor> Conv, Tensor Input)>();
        var removals = new List<Action>();
        try
        {
            foreach (var (name, module) in network.named_modules())
                if (IsConvolution(module) && module is Module<Tensor, Tensor> conv)
                {
                    string n = name;
                    // Out of every dispose scope: a module's forward (torchvision's) may dispose what was made in it.
                    var hook = conv.register_forward_pre_hook((m, input) =>
                    {
                        if (IsChannelsLast(input)) seen.Add((n, m, input.detach().DetachFromDisposeScope()));
                        return input;
                    });
                    removals.Add(hook.remove);
                }
            using (no_grad()) network.call(model.Input(x));
        }
        finally
        {
            foreach (var remove in removals) remove();
            using (no_grad())
                foreach (var (b, saved) in buffers) b.copy_(saved);
            set_rng_state(rng);
        }

        var wrong = new List<string>();
        using var grad = enable_grad();
        using var generator = new Generator(7, x.device);
        using var captured = new Captured(seen.Select(s => s.Input));
        foreach (var (name, conv, input) in seen)
        {
            using var layer = NewDisposeScope();
            var fast = input.detach().requires_grad_(true);
            var plain = input.detach().contiguous().requires_grad_(true);
            var yFast = conv.call(fast);
            var yPlain = conv.call(plain);
            var r = randn(yPlain.shape, generator: generator, device: yPlain.device).to(yPlain.dtype);
            var gFast = autograd.grad(new[] { (yFast * r).sum() }, new[] { fast })[0];
            var gPlain = autograd.grad(new[] { (yPlain * r).sum() }, new[] { plain })[0];
            double outputDifference = RelativeL2(new[] { yFast.detach() }, new[] { yPlain.detach() }), gradientDifference = RelativeL2(new[] { gFast }, new[] { gPlain });
            if (outputDifference > tolerance || gradientDifference > gradientTolerance)
                wrong.Add(name);
        }
        return wrong;
    }

    /// <summary>Disposes the layer inputs recorded outside every dispose scope.</summary>
    private sealed class Captured(IEnumerable<Tensor> tensors) : IDisposable
    {
        public void Dispose()
        {
            foreach (var t in tensors) t.Dispose();
        }
    }

    /// <summary>A 4-D tensor in channels-last (NHWC) memory order that is not also plain contiguous.</summary>
    internal static bool IsChannelsLast(Tensor t) => t.dim() == 4 && t.shape[1] > 1 && t.stride(1) == 1 && !t.is_contiguous();

    /// <summary>
    /// A layer the check can move to the plain layout: a convolution, or the library's conv + BatchNorm block (whose
    /// folded form calls the convolution function directly, so the inner module never runs).
    /// </summary>
    internal static bool IsConvolution(Module module) => module is TorchSharp.Modules.Conv2d or IBatchNormFoldable;

    private static string DescribeCpu()
    {
        string name = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
        var flags = new List<string>();
        try
        {
            if (File.Exists("/proc/cpuinfo"))
            {
                var lines = File.ReadLines("/proc/cpuinfo").Take(60).ToList();
                name = lines.FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? name;
                var present = (lines.FirstOrDefault(l => l.StartsWith("flags", StringComparison.Ordinal))?.Split(':', 2)[1] ?? "")
                    .Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
                foreach (var (flag, text) in new[] { ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512_BF16"), ("amx_tile", "AMX"), ("avx2", "AVX2") })
                    if (present.Contains(flag)) flags.Add(text);
                if (flags.Contains("AVX-512")) flags.Remove("AVX2");
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return flags.Count > 0 ? $"{name} ({string.Join(", ", flags)})" : name;
    }
}
