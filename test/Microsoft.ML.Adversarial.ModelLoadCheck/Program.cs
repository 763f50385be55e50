// Usage: Microsoft.ML.Adversarial.ModelLoadCheck MODEL.zip OUTPUT_FOLDER ROWS
// Loads MODEL.zip with mlContext.Model.Load in this fresh process, applies it to the first ROWS Fashion-MNIST test
// images, and writes every Single vector column as raw float32 (COLUMN.bin) plus the loaded transformer types.
using Microsoft.ML;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Data;

string modelPath = args[0], output = args[1];
int rows = int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture);
var mlContext = new MLContext(seed: 123); // a different seed: nothing may depend on the loading context's randomness
var model = mlContext.Model.Load(modelPath, out var inputSchema);
var parts = model is TransformerChain<ITransformer> chain ? chain.ToList() : new List<ITransformer> { model };
File.WriteAllLines(Path.Combine(output, "types.txt"), parts.Select(p => p.GetType().FullName!));
File.WriteAllText(Path.Combine(output, "input-schema.txt"), string.Join(",", inputSchema.Select(c => c.Name)));

var data = mlContext.Data.LoadFromFashionMnist(FashionMnistSplit.Test, count: rows, subset: SubsetMode.First);
var scored = model.Transform(data);
foreach (var column in scored.Schema.Where(c => c.Type is VectorDataViewType { ItemType: NumberDataViewType } v && v.ItemType == NumberDataViewType.Single))
{
    using var cursor = scored.GetRowCursor(new[] { column });
    var getter = cursor.GetGetter<VBuffer<float>>(column);
    var buffer = default(VBuffer<float>);
    using var file = new BinaryWriter(File.Create(Path.Combine(output, column.Name + ".bin")));
    while (cursor.MoveNext())
    {
        getter(ref buffer);
        foreach (var v in buffer.DenseValues()) file.Write(v);
    }
}
Console.WriteLine($"loaded {parts.Count} transformer(s): {string.Join(", ", parts.Select(p => p.GetType().Name))}");
