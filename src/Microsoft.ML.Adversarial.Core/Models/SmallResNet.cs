using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>
/// A small ResNet (He et al. 2016, CIFAR layout) for 3 x 32 x 32 images: conv 3x3 (16 rho) → BN → act, then three
/// stages of <c>blocksPerStage</c> basic blocks with 16, 32, 64 filters (times rho; stride 2 between stages),
/// global average pooling and a dense layer. Its BatchNorm layers let section 3's mixed clean/adversarial batches
/// be studied on a CPU. Names follow torchvision's ResNet (<c>conv1</c>, <c>bn1</c>, <c>layer1.0.conv1</c>, ..., <c>fc</c>).
/// </summary>
public sealed class SmallResNet : Module<Tensor, Tensor>, IReplicable
{
    private readonly Func<Module<Tensor, Tensor>> _rebuild;

    private readonly Conv2d conv1;
    private readonly BatchNorm2d bn1;
    private readonly Module<Tensor, Tensor> act;
    private readonly Sequential layer1, layer2, layer3;
    private readonly Linear fc;

    /// <summary>Builds the network.</summary>
    /// <param name="classes">Number of classes.</param>
    /// <param name="rho">Width multiplier of every layer (the paper's rho).</param>
    /// <param name="activation">The activation; null is ReLU.</param>
    /// <param name="inChannels">Input channels.</param>
    /// <param name="blocksPerStage">Basic blocks per stage (1 gives 8 layers, 3 gives ResNet-20).</param>
    public SmallResNet(int classes = 10, double rho = 1, ActivationSpec? activation = null, int inChannels = 3, int blocksPerStage = 1)
        : base(nameof(SmallResNet))
    {
        _rebuild = () => new SmallResNet(classes, rho, activation, inChannels, blocksPerStage);
        ModelChecks.Width(rho);
        ModelChecks.Classes(classes);
        if (blocksPerStage < 1) throw new ArgumentOutOfRangeException(nameof(blocksPerStage), blocksPerStage, "A stage needs at least one block.");
        Activation = activation ?? ActivationSpec.Relu;
        int w1 = ModelChecks.Scale(16, rho), w2 = ModelChecks.Scale(32, rho), w3 = ModelChecks.Scale(64, rho);
        conv1 = Conv2d(inChannels, w1, 3, padding: 1, bias: false);
        bn1 = BatchNorm2d(w1);
        act = Activation.Create();
        layer1 = Stage(w1, w1, 1, blocksPerStage);
        layer2 = Stage(w1, w2, 2, blocksPerStage);
        layer3 = Stage(w2, w3, 2, blocksPerStage);
        fc = Linear(w3, classes);
        Classes = classes;
        Rho = rho;
        RegisterComponents();
    }

    /// <summary>A new network with the same constructor arguments (a <see cref="ComputeModel"/>'s replica).</summary>
    public Module<Tensor, Tensor> CreateReplica() => _rebuild();

    /// <summary>Number of classes.</summary>
    public int Classes { get; }
    /// <summary>Width multiplier (the paper's rho).</summary>
    public double Rho { get; }
    /// <summary>The activation the layers use.</summary>
    public ActivationSpec Activation { get; }

    private Sequential Stage(int inC, int outC, int stride, int blocks)
    {
        var list = new List<(string, Module<Tensor, Tensor>)>();
        for (int i = 0; i < blocks; i++)
            list.Add((i.ToString(System.Globalization.CultureInfo.InvariantCulture), new BasicBlock(i == 0 ? inC : outC, outC, i == 0 ? stride : 1, Activation)));
        return Sequential(list);
    }

    /// <inheritdoc/>
    public override Tensor forward(Tensor x)
    {
        x = act.call(bn1.call(conv1.call(x)));
        x = layer3.call(layer2.call(layer1.call(x)));
        return fc.call(functional.adaptive_avg_pool2d(x, new long[] { 1, 1 }).flatten(1));
    }

    /// <summary>Two 3x3 conv/BN pairs with an identity (or 1x1 conv/BN when the shape changes) shortcut.</summary>
    private sealed class BasicBlock : Module<Tensor, Tensor>
    {
        private readonly Conv2d conv1, conv2;
        private readonly BatchNorm2d bn1, bn2;
        private readonly Sequential? downsample;
        private readonly Module<Tensor, Tensor> act1, act2;

        public BasicBlock(int inC, int outC, int stride, ActivationSpec activation) : base(nameof(BasicBlock))
        {
            conv1 = Conv2d(inC, outC, 3, stride: stride, padding: 1, bias: false);
            bn1 = BatchNorm2d(outC);
            conv2 = Conv2d(outC, outC, 3, padding: 1, bias: false);
            bn2 = BatchNorm2d(outC);
            if (stride != 1 || inC != outC)
                downsample = Sequential(("0", Conv2d(inC, outC, 1, stride: stride, bias: false)), ("1", BatchNorm2d(outC)));
            act1 = activation.Create();
            act2 = activation.Create();
            register_module("conv1", conv1);
            register_module("bn1", bn1);
            register_module("conv2", conv2);
            register_module("bn2", bn2);
            if (downsample is not null) register_module("downsample", downsample);
        }

        public override Tensor forward(Tensor x)
        {
            var y = act1.call(bn1.call(conv1.call(x)));
            y = bn2.call(conv2.call(y));
            return act2.call(y.Plus(downsample?.call(x) ?? x)); // held alpha: see HeldScalars
        }
    }
}
