using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Tests.AttackMethods;

/// <summary>
/// A linear classifier z = W x + b whose input gradients are known in closed form:
/// grad_x CE(z, y) = W^T (softmax(z) - e_y) and grad_x H(softmax(z)) = W^T g_H with (g_H)_j = -p_j (log p_j + H).
/// </summary>
internal sealed class LinearModel
{
    public readonly double[,] W;
    public readonly double[] B;
    public readonly torch.nn.Module<Tensor, Tensor> Module;
    public int Inputs => W.GetLength(1);
    public int Classes => W.GetLength(0);

    public LinearModel(int classes, int inputs, int seed)
    {
        var rng = new Random(seed);
        W = new double[classes, inputs];
        B = new double[classes];
        for (int k = 0; k < classes; k++)
        {
            B[k] = rng.NextDouble() - 0.5;
            for (int d = 0; d < inputs; d++)
                W[k, d] = (rng.NextDouble() < 0.5 ? -1 : 1) * (0.5 + rng.NextDouble()); // |w| >= 0.5: no near-zero gradients by accident
        }
        var linear = torch.nn.Linear(inputs, classes);
        using (torch.no_grad())
        {
            linear.weight!.copy_(torch.tensor(Flatten(W), new long[] { classes, inputs }, dtype: ScalarType.Float32));
            linear.bias!.copy_(torch.tensor(B.Select(v => (float)v).ToArray()));
        }
        Module = linear;
    }

    public double[] Probabilities(double[] x)
    {
        var z = new double[Classes];
        for (int k = 0; k < Classes; k++)
        {
            z[k] = B[k];
            for (int d = 0; d < Inputs; d++) z[k] += W[k, d] * x[d];
        }
        double max = z.Max();
        var e = z.Select(v => Math.Exp(v - max)).ToArray();
        double s = e.Sum();
        return e.Select(v => v / s).ToArray();
    }

    /// <summary>W^T v.</summary>
    public double[] Back(double[] v)
    {
        var g = new double[Inputs];
        for (int d = 0; d < Inputs; d++)
            for (int k = 0; k < Classes; k++) g[d] += W[k, d] * v[k];
        return g;
    }

    public double[] CrossEntropyGradient(double[] x, int y)
    {
        var p = Probabilities(x);
        p[y] -= 1;
        return Back(p);
    }

    public double[] EntropyGradient(double[] x)
    {
        var p = Probabilities(x);
        double h = -p.Sum(v => v * Math.Log(v));
        return Back(p.Select(v => -v * (Math.Log(v) + h)).ToArray());
    }

    private static float[] Flatten(double[,] m)
    {
        var r = new float[m.Length];
        int i = 0;
        foreach (double v in m) r[i++] = (float)v;
        return r;
    }
}
