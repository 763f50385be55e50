using System.Runtime.InteropServices;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.Testing;

/// <summary>
/// What the tests and the benchmark harness share when they compare with a reference: the SmallCnn trained the same
/// way on both, and the raw tensor files test/reference/*.py read (compiled into both projects from test/Shared).
/// </summary>
internal static class ReferenceModels
{
    /// <summary>A SmallCnn (rho 0.5) trained with Adam for 3 epochs of batch 64 on <paramref name="data"/>, seeded, in evaluation mode.</summary>
    public static SmallCnn TrainSmallCnn(ImageSet data, int seed = 7)
    {
        torch.manual_seed(seed);
        var model = new SmallCnn(rho: 0.5);
        var optimizer = torch.optim.Adam(model.parameters(), lr: 2e-3);
        var rng = new Random(seed);
        model.train();
        for (int epoch = 0; epoch < 3; epoch++)
        {
            var order = Enumerable.Range(0, data.RowCount).ToArray();
            rng.Shuffle(order);
            for (int start = 0; start < order.Length; start += 64)
            {
                using var scope = torch.NewDisposeScope();
                var (x, y) = data.ToTensors(order.AsSpan(start, Math.Min(64, order.Length - start)));
                optimizer.zero_grad();
                torch.nn.functional.cross_entropy(model.call(x), y).backward();
                optimizer.step();
            }
        }
        model.eval();
        optimizer.zero_grad();
        foreach (var p in model.parameters()) p.grad = null;
        return model;
    }

    /// <summary>
    /// Writes what test/reference/*.py read: the model's parameters ("param.NAME"), the given tensors and
    /// manifest.json (their dtypes and shapes, and the epsilon in pixel units).
    /// </summary>
    public static void WriteFolder(string folder, nn.Module model, double epsilon, params (string Name, Tensor Tensor)[] tensors)
    {
        var manifest = new Dictionary<string, object>();
        foreach (var (name, p) in model.named_parameters()) manifest["param." + name] = WriteTensor(folder, "param." + name, p);
        foreach (var (name, t) in tensors) manifest[name] = WriteTensor(folder, name, t);
        File.WriteAllText(Path.Combine(folder, "manifest.json"), System.Text.Json.JsonSerializer.Serialize(new { epsilon, tensors = manifest }));
    }

    /// <summary>Writes <paramref name="t"/> as FOLDER/NAME.bin (little-endian float32, or int64) and returns its manifest entry.</summary>
    public static object WriteTensor(string folder, string name, Tensor t)
    {
        var c = t.detach().cpu().contiguous();
        string path = Path.Combine(folder, name + ".bin");
        if (c.dtype == ScalarType.Int64)
        {
            File.WriteAllBytes(path, MemoryMarshal.AsBytes(c.data<long>().ToArray().AsSpan()).ToArray());
            return new { dtype = "int64", shape = c.shape };
        }
        File.WriteAllBytes(path, MemoryMarshal.AsBytes(c.to(ScalarType.Float32).data<float>().ToArray().AsSpan()).ToArray());
        return new { dtype = "float32", shape = c.shape };
    }
}
