using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>A classifier with an auxiliary head that adds to the training loss (Inception's side classifier).</summary>
public interface IAuxiliaryClassifier
{
    /// <summary>Whether the auxiliary head exists.</summary>
    bool HasAuxiliaryLogits { get; }

    /// <summary>Weight of the auxiliary loss in training (Inception uses 0.4).</summary>
    double AuxiliaryLossWeight { get; }

    /// <summary>Main logits, plus auxiliary logits when the head exists and the module is in training mode.</summary>
    (Tensor Logits, Tensor? Auxiliary) ForwardWithAuxiliary(Tensor x);
}

/// <summary>
/// Inception v3 (Szegedy et al. 2015), the paper's network, with the capacity knobs of section 4.3:
/// <c>rho</c> multiplies every convolution's filter count, <c>deeper</c> adds two Inception blocks (Table 1).
/// At rho = 1 without extra blocks, parameter and buffer names equal torchvision's <c>inception_v3</c>,
/// so a PyTorch state dict loads with <see cref="ModelIO.LoadWeights"/> (or TorchSharp.PyBridge's <c>load_py</c>).
/// Inputs are 3 x 299 x 299 at full scale; anything from 75 x 75 up works.
/// </summary>
/// <remarks>
/// The paper does not say where its two extra blocks go; this puts them at the 17 x 17 stage, after <c>Mixed_6e</c>,
/// as 768-channel blocks named <c>Mixed_6f</c> and <c>Mixed_6g</c> (the stage with the most blocks in the original).
/// </remarks>
public sealed class InceptionV3 : Module<Tensor, Tensor>, IAuxiliaryClassifier, IReplicable
{
    private readonly Func<Module<Tensor, Tensor>> _rebuild;
    private readonly Module<Tensor, Tensor>[] _stem;
    private readonly Module<Tensor, Tensor>[] _middle;
    private readonly InceptionAux? AuxLogits;
    private readonly Module<Tensor, Tensor>[] _top;
    private readonly Dropout dropout;
    private readonly Linear fc;

    /// <summary>Builds the network (torchvision's layer names, so its weights load).</summary>
    /// <param name="classes">Number of classes.</param>
    /// <param name="rho">Width multiplier of every layer (the paper's rho).</param>
    /// <param name="deeper">Add the paper's extra layers ("deeper" model).</param>
    /// <param name="auxLogits">Build the auxiliary classifier.</param>
    /// <param name="dropout">Dropout before the last layer.</param>
    /// <param name="activation">The activation; null is ReLU.</param>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="transformInput">torchvision's <c>transform_input</c>.</param>
    public InceptionV3(int classes = 1000, double rho = 1, bool deeper = false, bool auxLogits = true, double dropout = 0.5,
        ActivationSpec? activation = null, int inChannels = 3, bool transformInput = false)
        : base(nameof(InceptionV3))
    {
        _rebuild = () => new InceptionV3(classes, rho, deeper, auxLogits, dropout, activation, inChannels, transformInput);
        ModelChecks.Width(rho);
        ModelChecks.Classes(classes);
        if (!(dropout >= 0 && dropout < 1)) throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "Dropout must lie in [0, 1).");
        var b = new Builder(rho, activation ?? ActivationSpec.Relu);
        Classes = classes; Rho = rho; Deeper = deeper; Activation = activation ?? ActivationSpec.Relu; TransformInput = transformInput;

        var stem = new List<(string, Module<Tensor, Tensor>)>
        {
            ("Conv2d_1a_3x3", b.Conv(inChannels, 32, 3, out int c, stride: 2)),
            ("Conv2d_2a_3x3", b.Conv(c, 32, 3, out c)),
            ("Conv2d_2b_3x3", b.Conv(c, 64, 3, out c, padding: 1)),
            ("maxpool1", MaxPool2d(3, 2)),
            ("Conv2d_3b_1x1", b.Conv(c, 80, 1, out c)),
            ("Conv2d_4a_3x3", b.Conv(c, 192, 3, out c)),
            ("maxpool2", MaxPool2d(3, 2)),
        };
        var middle = new List<(string, Module<Tensor, Tensor>)>
        {
            ("Mixed_5b", new InceptionA(b, c, 32, out c)),
            ("Mixed_5c", new InceptionA(b, c, 64, out c)),
            ("Mixed_5d", new InceptionA(b, c, 64, out c)),
            ("Mixed_6a", new InceptionB(b, c, out c)),
            ("Mixed_6b", new InceptionC(b, c, 128, out c)),
            ("Mixed_6c", new InceptionC(b, c, 160, out c)),
            ("Mixed_6d", new InceptionC(b, c, 160, out c)),
            ("Mixed_6e", new InceptionC(b, c, 192, out c)),
        };
        if (deeper)
        {
            middle.Add(("Mixed_6f", new InceptionC(b, c, 192, out c)));
            middle.Add(("Mixed_6g", new InceptionC(b, c, 192, out c)));
        }
        if (auxLogits) AuxLogits = new InceptionAux(b, c, classes);
        var top = new List<(string, Module<Tensor, Tensor>)>
        {
            ("Mixed_7a", new InceptionD(b, c, out c)),
            ("Mixed_7b", new InceptionE(b, c, out c)),
            ("Mixed_7c", new InceptionE(b, c, out c)),
        };
        this.dropout = Dropout(dropout);
        fc = Linear(c, classes);

        // Registration order follows torchvision's attribute order, so state dicts list the same keys in the same order.
        foreach (var (name, m) in stem) register_module(name, m);
        foreach (var (name, m) in middle) register_module(name, m);
        if (AuxLogits is not null) register_module("AuxLogits", AuxLogits);
        foreach (var (name, m) in top) register_module(name, m);
        register_module("dropout", this.dropout);
        register_module("fc", fc);
        _stem = stem.Select(t => t.Item2).ToArray();
        _middle = middle.Select(t => t.Item2).ToArray();
        _top = top.Select(t => t.Item2).ToArray();
    }

    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Width multiplier (the paper's rho).</summary>
    public double Rho { get; }
    /// <summary>True for the paper's "deeper" variant.</summary>
    public bool Deeper { get; }
    /// <summary>The activation the layers use.</summary>
    public ActivationSpec Activation { get; }
    /// <summary>torchvision's <c>transform_input</c>: maps ImageNet-normalised input to the [-1, 1] scaling Google's weights expect.</summary>
    public bool TransformInput { get; }
    /// <summary>True when the network has the auxiliary classifier.</summary>
    public bool HasAuxiliaryLogits => AuxLogits is not null;
    /// <summary>Weight of the auxiliary classifier's loss in training (0.4, as in Inception v3).</summary>
    public double AuxiliaryLossWeight => 0.4;

    /// <summary>A new network with the same constructor arguments (a <see cref="ComputeModel"/>'s replica).</summary>
    public Module<Tensor, Tensor> CreateReplica() => _rebuild();

    /// <summary>The main logits.</summary>
    public override Tensor forward(Tensor x) => ForwardWithAuxiliary(x).Logits;

    /// <summary>The main logits and, in training mode with the auxiliary classifier, its logits (else null).</summary>
    public (Tensor Logits, Tensor? Auxiliary) ForwardWithAuxiliary(Tensor x)
    {
        if (TransformInput) x = TransformImageNetInput(x);
        foreach (var m in _stem) x = m.call(x);
        foreach (var m in _middle) x = m.call(x);
        Tensor? aux = AuxLogits is not null && training ? AuxLogits.call(x) : null;
        foreach (var m in _top) x = m.call(x);
        x = functional.adaptive_avg_pool2d(x, new long[] { 1, 1 }).flatten(1);
        return (fc.call(dropout.call(x)), aux);
    }

    /// <summary>
    /// Parameters and buffers (running statistics and BatchNorm's step counter included) of the network these
    /// arguments build, computed from the numbers alone, layer by layer as the constructor builds it: nothing is
    /// allocated, so it is safe on any description (<see cref="ModelDescription.EstimateParameterCount"/>).
    /// </summary>
    internal static double ParameterCount(int classes, double rho, bool deeper, bool auxLogits, int inChannels)
    {
        double total = 0;
        // BasicConv2d: the convolution (no bias), BatchNorm's weight, bias, running mean and variance, and its counter.
        double Conv(double inC, int width, int kh, int kw)
        {
            double o = Math.Max(1, Math.Round(width * rho));
            total += inC * o * kh * kw + 4 * o + 1;
            return o;
        }
        double A(double x, int pool) =>
            Conv(x, 64, 1, 1) + Conv(Conv(x, 48, 1, 1), 64, 5, 5) + Conv(Conv(Conv(x, 64, 1, 1), 96, 3, 3), 96, 3, 3) + Conv(x, pool, 1, 1);
        double B(double x) => Conv(x, 384, 3, 3) + Conv(Conv(Conv(x, 64, 1, 1), 96, 3, 3), 96, 3, 3) + x;
        double C(double x, int c7) =>
            Conv(x, 192, 1, 1) + Conv(Conv(Conv(x, c7, 1, 1), c7, 1, 7), 192, 7, 1)
            + Conv(Conv(Conv(Conv(Conv(x, c7, 1, 1), c7, 7, 1), c7, 1, 7), c7, 7, 1), 192, 1, 7) + Conv(x, 192, 1, 1);
        double D(double x) => Conv(Conv(x, 192, 1, 1), 320, 3, 3) + Conv(Conv(Conv(Conv(x, 192, 1, 1), 192, 1, 7), 192, 7, 1), 192, 3, 3) + x;
        double E(double x)
        {
            double o1 = Conv(x, 320, 1, 1), s = Conv(x, 384, 1, 1);
            double o2 = Conv(s, 384, 1, 3) + Conv(s, 384, 3, 1);
            double d = Conv(Conv(x, 448, 1, 1), 384, 3, 3);
            return o1 + o2 + Conv(d, 384, 1, 3) + Conv(d, 384, 3, 1) + Conv(x, 192, 1, 1);
        }
        double c = Conv(Conv(Conv(Conv(Conv(inChannels, 32, 3, 3), 32, 3, 3), 64, 3, 3), 80, 1, 1), 192, 3, 3);
        c = B(A(A(A(c, 32), 64), 64));
        c = C(C(C(C(c, 128), 160), 160), 192);
        if (deeper) c = C(C(c, 192), 192);
        if (auxLogits)
        {
            double auxFeatures = Conv(Conv(c, 128, 1, 1), 768, 5, 5); // before adding: "total +=" reads total first
            total += (auxFeatures + 1) * classes;
        }
        c = E(E(D(c)));
        return total + (c + 1) * classes;
    }

    private static Tensor TransformImageNetInput(Tensor x)
    {
        // Held Scalars (see HeldScalars): these run inside every attack's forward pass.
        var c0 = x[.., 0..1].Times(0.229 / 0.5).Plus((0.485 - 0.5) / 0.5);
        var c1 = x[.., 1..2].Times(0.224 / 0.5).Plus((0.456 - 0.5) / 0.5);
        var c2 = x[.., 2..3].Times(0.225 / 0.5).Plus((0.406 - 0.5) / 0.5);
        return cat(new[] { c0, c1, c2 }, 1);
    }

    /// <summary>Makes convolution blocks with widths scaled by rho.</summary>
    internal sealed class Builder(double rho, ActivationSpec activation)
    {
        public BasicConv2d Conv(long inC, int width, long kernel, out int outC, long stride = 1, long padding = 0)
        {
            outC = ModelChecks.Scale(width, rho);
            return new BasicConv2d(Conv2d(inC, outC, kernel, stride: stride, padding: padding, bias: false), outC, activation);
        }

        public BasicConv2d Conv(long inC, int width, (long, long) kernel, (long, long) padding, out int outC)
        {
            outC = ModelChecks.Scale(width, rho);
            return new BasicConv2d(Conv2d(inC, outC, kernel, stride: (1, 1), padding: padding, bias: false), outC, activation);
        }
    }

    /// <summary>conv (no bias) → BatchNorm (eps 0.001) → activation, named <c>conv</c> and <c>bn</c> as in torchvision.</summary>
    internal sealed class BasicConv2d : Module<Tensor, Tensor>, IBatchNormFoldable
    {
        private readonly Conv2d conv;
        private readonly BatchNorm2d bn;
        private readonly Module<Tensor, Tensor> act;
        // Set on a ComputeModel's replica only (evaluation mode): conv and bn as one convolution.
        private Tensor? _foldedWeight, _foldedBias;

        public BasicConv2d(Conv2d conv, int channels, ActivationSpec activation) : base(nameof(BasicConv2d))
        {
            this.conv = conv;
            bn = BatchNorm2d(channels, eps: 0.001);
            act = activation.Create();
            register_module("conv", this.conv);
            register_module("bn", bn);
            // The activation has no state; it stays out of the state dict, as in torchvision.
        }

        public override Tensor forward(Tensor x)
        {
            if (_foldedWeight is null) return act.call(bn.call(conv.call(x)));
            if (training) throw new InvalidOperationException("A folded BasicConv2d runs in evaluation mode only.");
            return act.call(functional.conv2d(x, _foldedWeight, _foldedBias, conv.stride, conv.padding, conv.dilation, conv.groups));
        }

        (Tensor ConvWeight, Tensor? ConvBias, BatchNorm2d Norm) IBatchNormFoldable.Parts => (conv.weight!, conv.bias, bn);

        void IBatchNormFoldable.Fold(IBatchNormFoldable source, ScalarType dtype)
        {
            using var scope = NewDisposeScope();
            using var noGrad = no_grad();
            var (w, cb, norm) = source.Parts;
            var (weight, bias) = BatchNormFolding.Folded(w, cb, norm);
            // Refreshed in place after the first time: a pass running on another thread never sees a disposed tensor.
            if (_foldedWeight is not null && _foldedBias is not null && _foldedWeight.dtype == dtype)
            {
                _foldedWeight.copy_(weight);
                _foldedBias.copy_(bias);
                return;
            }
            _foldedWeight?.Dispose();
            _foldedBias?.Dispose();
            _foldedWeight = weight.to(dtype).detach().DetachFromDisposeScope();
            _foldedBias = bias.to(dtype).detach().DetachFromDisposeScope();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _foldedWeight?.Dispose();
                _foldedBias?.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    private abstract class Block(string name) : Module<Tensor, Tensor>(name)
    {
        protected T Add<T>(string name, T module) where T : Module
        {
            register_module(name, module);
            return module;
        }

        protected static Tensor AvgPool3(Tensor x) => functional.avg_pool2d(x, 3, stride: 1, padding: 1);
        protected static Tensor MaxPool3s2(Tensor x) => functional.max_pool2d(x, 3, stride: 2);
    }

    private sealed class InceptionA : Block
    {
        private readonly BasicConv2d branch1x1, branch5x5_1, branch5x5_2, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3, branch_pool;

        public InceptionA(Builder b, int inC, int poolFeatures, out int outC) : base(nameof(InceptionA))
        {
            branch1x1 = Add("branch1x1", b.Conv(inC, 64, 1, out int o1));
            branch5x5_1 = Add("branch5x5_1", b.Conv(inC, 48, 1, out int t));
            branch5x5_2 = Add("branch5x5_2", b.Conv(t, 64, 5, out int o2, padding: 2));
            branch3x3dbl_1 = Add("branch3x3dbl_1", b.Conv(inC, 64, 1, out t));
            branch3x3dbl_2 = Add("branch3x3dbl_2", b.Conv(t, 96, 3, out t, padding: 1));
            branch3x3dbl_3 = Add("branch3x3dbl_3", b.Conv(t, 96, 3, out int o3, padding: 1));
            branch_pool = Add("branch_pool", b.Conv(inC, poolFeatures, 1, out int o4));
            outC = o1 + o2 + o3 + o4;
        }

        public override Tensor forward(Tensor x) =>
            cat(new[] { branch1x1.call(x), branch5x5_2.call(branch5x5_1.call(x)), branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x))), branch_pool.call(AvgPool3(x)) }, 1);
    }

    private sealed class InceptionB : Block
    {
        private readonly BasicConv2d branch3x3, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3;

        public InceptionB(Builder b, int inC, out int outC) : base(nameof(InceptionB))
        {
            branch3x3 = Add("branch3x3", b.Conv(inC, 384, 3, out int o1, stride: 2));
            branch3x3dbl_1 = Add("branch3x3dbl_1", b.Conv(inC, 64, 1, out int t));
            branch3x3dbl_2 = Add("branch3x3dbl_2", b.Conv(t, 96, 3, out t, padding: 1));
            branch3x3dbl_3 = Add("branch3x3dbl_3", b.Conv(t, 96, 3, out int o2, stride: 2));
            outC = o1 + o2 + inC;
        }

        public override Tensor forward(Tensor x) => cat(new[] { branch3x3.call(x), branch3x3dbl_3.call(branch3x3dbl_2.call(branch3x3dbl_1.call(x))), MaxPool3s2(x) }, 1);
    }

    private sealed class InceptionC : Block
    {
        private readonly BasicConv2d branch1x1, branch7x7_1, branch7x7_2, branch7x7_3, branch7x7dbl_1, branch7x7dbl_2, branch7x7dbl_3, branch7x7dbl_4, branch7x7dbl_5, branch_pool;

        public InceptionC(Builder b, int inC, int channels7x7, out int outC) : base(nameof(InceptionC))
        {
            branch1x1 = Add("branch1x1", b.Conv(inC, 192, 1, out int o1));
            branch7x7_1 = Add("branch7x7_1", b.Conv(inC, channels7x7, 1, out int t));
            branch7x7_2 = Add("branch7x7_2", b.Conv(t, channels7x7, (1, 7), (0, 3), out t));
            branch7x7_3 = Add("branch7x7_3", b.Conv(t, 192, (7, 1), (3, 0), out int o2));
            branch7x7dbl_1 = Add("branch7x7dbl_1", b.Conv(inC, channels7x7, 1, out t));
            branch7x7dbl_2 = Add("branch7x7dbl_2", b.Conv(t, channels7x7, (7, 1), (3, 0), out t));
            branch7x7dbl_3 = Add("branch7x7dbl_3", b.Conv(t, channels7x7, (1, 7), (0, 3), out t));
            branch7x7dbl_4 = Add("branch7x7dbl_4", b.Conv(t, channels7x7, (7, 1), (3, 0), out t));
            branch7x7dbl_5 = Add("branch7x7dbl_5", b.Conv(t, 192, (1, 7), (0, 3), out int o3));
            branch_pool = Add("branch_pool", b.Conv(inC, 192, 1, out int o4));
            outC = o1 + o2 + o3 + o4;
        }

        public override Tensor forward(Tensor x) => cat(new[]
        {
            branch1x1.call(x),
            branch7x7_3.call(branch7x7_2.call(branch7x7_1.call(x))),
            branch7x7dbl_5.call(branch7x7dbl_4.call(branch7x7dbl_3.call(branch7x7dbl_2.call(branch7x7dbl_1.call(x))))),
            branch_pool.call(AvgPool3(x)),
        }, 1);
    }

    private sealed class InceptionD : Block
    {
        private readonly BasicConv2d branch3x3_1, branch3x3_2, branch7x7x3_1, branch7x7x3_2, branch7x7x3_3, branch7x7x3_4;

        public InceptionD(Builder b, int inC, out int outC) : base(nameof(InceptionD))
        {
            branch3x3_1 = Add("branch3x3_1", b.Conv(inC, 192, 1, out int t));
            branch3x3_2 = Add("branch3x3_2", b.Conv(t, 320, 3, out int o1, stride: 2));
            branch7x7x3_1 = Add("branch7x7x3_1", b.Conv(inC, 192, 1, out t));
            branch7x7x3_2 = Add("branch7x7x3_2", b.Conv(t, 192, (1, 7), (0, 3), out t));
            branch7x7x3_3 = Add("branch7x7x3_3", b.Conv(t, 192, (7, 1), (3, 0), out t));
            branch7x7x3_4 = Add("branch7x7x3_4", b.Conv(t, 192, 3, out int o2, stride: 2));
            outC = o1 + o2 + inC;
        }

        public override Tensor forward(Tensor x) =>
            cat(new[] { branch3x3_2.call(branch3x3_1.call(x)), branch7x7x3_4.call(branch7x7x3_3.call(branch7x7x3_2.call(branch7x7x3_1.call(x)))), MaxPool3s2(x) }, 1);
    }

    private sealed class InceptionE : Block
    {
        private readonly BasicConv2d branch1x1, branch3x3_1, branch3x3_2a, branch3x3_2b, branch3x3dbl_1, branch3x3dbl_2, branch3x3dbl_3a, branch3x3dbl_3b, branch_pool;

        public InceptionE(Builder b, int inC, out int outC) : base(nameof(InceptionE))
        {
            branch1x1 = Add("branch1x1", b.Conv(inC, 320, 1, out int o1));
            branch3x3_1 = Add("branch3x3_1", b.Conv(inC, 384, 1, out int t));
            branch3x3_2a = Add("branch3x3_2a", b.Conv(t, 384, (1, 3), (0, 1), out int o2a));
            branch3x3_2b = Add("branch3x3_2b", b.Conv(t, 384, (3, 1), (1, 0), out int o2b));
            branch3x3dbl_1 = Add("branch3x3dbl_1", b.Conv(inC, 448, 1, out t));
            branch3x3dbl_2 = Add("branch3x3dbl_2", b.Conv(t, 384, 3, out t, padding: 1));
            branch3x3dbl_3a = Add("branch3x3dbl_3a", b.Conv(t, 384, (1, 3), (0, 1), out int o3a));
            branch3x3dbl_3b = Add("branch3x3dbl_3b", b.Conv(t, 384, (3, 1), (1, 0), out int o3b));
            branch_pool = Add("branch_pool", b.Conv(inC, 192, 1, out int o4));
            outC = o1 + o2a + o2b + o3a + o3b + o4;
        }

        public override Tensor forward(Tensor x)
        {
            var s = branch3x3_1.call(x);
            var d = branch3x3dbl_2.call(branch3x3dbl_1.call(x));
            return cat(new[]
            {
                branch1x1.call(x),
                cat(new[] { branch3x3_2a.call(s), branch3x3_2b.call(s) }, 1),
                cat(new[] { branch3x3dbl_3a.call(d), branch3x3dbl_3b.call(d) }, 1),
                branch_pool.call(AvgPool3(x)),
            }, 1);
        }
    }

    /// <summary>The side classifier on the 17 x 17 features (torchvision's <c>InceptionAux</c>: conv0, conv1, fc).</summary>
    private sealed class InceptionAux : Block
    {
        private readonly BasicConv2d conv0, conv1;
        private readonly Linear fc;

        public InceptionAux(Builder b, int inC, int classes) : base(nameof(InceptionAux))
        {
            conv0 = Add("conv0", b.Conv(inC, 128, 1, out int t));
            conv1 = Add("conv1", b.Conv(t, 768, 5, out int o));
            fc = Add("fc", Linear(o, classes));
        }

        public override Tensor forward(Tensor x)
        {
            // At full size (17 x 17 features) this is torchvision's pooling to 5 x 5; smaller inputs (down to 75 x 75,
            // 3 x 3 features) are pooled adaptively to the 5 x 5 that conv1 needs.
            x = x.shape[^1] >= 17 ? functional.avg_pool2d(x, 5, stride: 3) : functional.adaptive_avg_pool2d(x, new long[] { 5, 5 });
            x = conv1.call(conv0.call(x));
            return fc.call(functional.adaptive_avg_pool2d(x, new long[] { 1, 1 }).flatten(1));
        }
    }
}
