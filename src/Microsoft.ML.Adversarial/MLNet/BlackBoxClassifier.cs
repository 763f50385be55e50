using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// Any fitted ML.NET model that maps the pixel column to a class-score column, as a black-box classifier: an ONNX
/// network through <c>ApplyOnnxModel</c>, an ML.NET trainer on the pixels, a whole fitted pipeline. It gives scores
/// only, no gradients, so score-based attacks (<c>square</c>, the Square part of <c>autoattack</c>) run on it
/// directly and transfer studies use it as a target. Every batch is scored by the model's own <c>Transform</c>, so
/// what is measured is what the model does in ML.NET.
/// </summary>
/// <remarks>
/// The model receives the images exactly as the data's pixel column holds them (same column name, layout C x H x W
/// and values), together with a key-typed label column. Its score slots are matched to the classes by name when the
/// score column carries slot names (ML.NET trainers do), else through <see cref="Options.ScoreClassNames"/>, else
/// slot k is taken to be class k (said in <see cref="ClassOrderAssumed"/>).
/// </remarks>
public sealed class BlackBoxClassifier
{
    /// <summary>Column names and the score slots' classes of a black-box model.</summary>
    public sealed class Options
    {
        /// <summary>The pixel column the model reads (ML.NET's image pipeline and this library's default: <c>Pixels</c>).</summary>
        public string PixelColumnName { get; set; } = ColumnNames.Pixels;

        /// <summary>The key-typed label column given to the model along with the pixels (models may ignore it).</summary>
        public string LabelColumnName { get; set; } = DefaultColumnNames.Label;

        /// <summary>The model's class-score column: <c>Score</c> for ML.NET trainers, the ONNX output's name for <c>ApplyOnnxModel</c>.</summary>
        public string ScoreColumnName { get; set; } = DefaultColumnNames.Score;

        /// <summary>
        /// Class names of the score slots in slot order, for a score column without slot names (an ONNX output). Null:
        /// the column's slot names if it has them, else slot k is class k.
        /// </summary>
        public IReadOnlyList<string>? ScoreClassNames { get; set; }
    }

    private readonly MLContext _ml;
    private readonly ITransformer _model;
    private readonly Options _options;
    private readonly IReadOnlyList<string> _classNames;
    private readonly (int C, int H, int W) _shape;
    private readonly long[] _slotOfClass;
    private readonly int _slots;

    /// <summary>Checks the model's output schema now, before any scoring, and builds the score function.</summary>
    /// <param name="mlContext">The caller's context.</param>
    /// <param name="model">A fitted model that maps the pixel column to class scores.</param>
    /// <param name="classNames">The classes, in the order the labels of the data use.</param>
    /// <param name="imageShape">(C, H, W) of the pixel column.</param>
    /// <param name="options">Column names and score-slot classes; null takes the defaults.</param>
    /// <param name="name">The model's name in reports and errors.</param>
    public BlackBoxClassifier(MLContext mlContext, ITransformer model, IReadOnlyList<string> classNames, (int Channels, int Height, int Width) imageShape,
        Options? options = null, string name = "black-box model")
    {
        _ml = mlContext ?? throw new ArgumentNullException(nameof(mlContext));
        _model = model ?? throw new ArgumentNullException(nameof(model));
        _classNames = classNames ?? throw new ArgumentNullException(nameof(classNames));
        _options = options ?? new Options();
        _shape = imageShape;
        Name = name;
        var input = View(new float[_shape.C * _shape.H * _shape.W], 1).Schema;
        DataViewSchema output;
        try { output = model.GetOutputSchema(input); }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or FormatException)
        {
            throw new ArgumentException($"Model '{name}' cannot take the images: {e.Message} A black-box model must read the pixel column " +
                $"'{_options.PixelColumnName}' (Vector<Single> of {_shape.C}x{_shape.H}x{_shape.W} values, as the data holds them); set {nameof(Options)}.{nameof(Options.PixelColumnName)} " +
                "to the column it reads, or put a CopyColumns in front of it.", nameof(model), e);
        }
        var score = output.GetColumnOrNull(_options.ScoreColumnName) ?? throw new ArgumentException(
            $"Model '{name}' gives no column '{_options.ScoreColumnName}' (its columns: {string.Join(", ", output.Select(c => c.Name))}). " +
            $"Set {nameof(Options)}.{nameof(Options.ScoreColumnName)} to its class-score column (for ApplyOnnxModel, the ONNX output's name).", nameof(model));
        if (score.Type is not VectorDataViewType { ItemType: NumberDataViewType n, IsKnownSize: true } vector || n.RawType != typeof(float))
            throw new ArgumentException($"Column '{score.Name}' of model '{name}' is {score.Type}; class scores must be a known-size vector of Single, one value per class.", nameof(model));
        _slots = vector.Size;
        _slotOfClass = SlotOfEachClass(score);
    }

    /// <summary>The model's name in reports and errors.</summary>
    public string Name { get; }

    /// <summary>True when neither slot names nor <see cref="Options.ScoreClassNames"/> said which class each score is: slot k is taken to be class k.</summary>
    public bool ClassOrderAssumed { get; private set; }

    /// <summary>
    /// The model as a TorchSharp module for the core's attacks and evaluators: images [N, C, H, W] to scores [N, K]
    /// in class order (probabilities come back as their logarithm, see <see cref="ScoreFunctionModel"/>); counts queries.
    /// </summary>
    public ScoreFunctionModel AsModule() => new(Scores, probabilities: false, name: Name);

    private long[] SlotOfEachClass(DataViewSchema.Column score)
    {
        IReadOnlyList<string>? slotNames = _options.ScoreClassNames;
        if (slotNames is null && score.HasSlotNames(_slots))
        {
            VBuffer<ReadOnlyMemory<char>> names = default;
            score.GetSlotNames(ref names);
            slotNames = names.DenseValues().Select(v => v.ToString()).ToList();
        }
        if (slotNames is null)
        {
            if (_slots != _classNames.Count)
                throw new ArgumentException($"Column '{score.Name}' of model '{Name}' has {_slots} scores and the data {_classNames.Count} classes, and no slot names say which is which. " +
                    $"Give the classes of the scores in {nameof(Options)}.{nameof(Options.ScoreClassNames)}.");
            ClassOrderAssumed = true;
            return Enumerable.Range(0, _slots).Select(i => (long)i).ToArray();
        }
        if (slotNames.Count != _slots)
            throw new ArgumentException($"{slotNames.Count} score class names were given for {_slots} scores of column '{score.Name}' of model '{Name}'.");
        var missing = _classNames.Where(c => !slotNames.Contains(c)).ToList();
        if (missing.Count > 0)
            throw new ArgumentException($"Model '{Name}' scores the classes {ClassMatch.Show(slotNames.ToList())}; the data's classes {ClassMatch.Show(missing)} are not among them. " +
                "A black-box target must score every class of the data.");
        return _classNames.Select(c => (long)slotNames.ToList().IndexOf(c)).ToArray();
    }

    private IDataView View(float[] pixels, int count) =>
        new ImageSetDataView(ImageSet.FromFloats(pixels, new uint[count], _classNames, _shape), _options.LabelColumnName, _options.PixelColumnName);

    private Tensor Scores(Tensor images)
    {
        int count = (int)images.shape[0];
        var pixels = images.detach().cpu().to_type(ScalarType.Float32).contiguous().data<float>().ToArray();
        var scored = _model.Transform(View(pixels, count));
        var values = new float[(long)count * _slots];
        var column = scored.Schema[_options.ScoreColumnName];
        using (var cursor = scored.GetRowCursor(new[] { column }))
        {
            var getter = cursor.GetGetter<VBuffer<float>>(column);
            VBuffer<float> row = default;
            int r = 0;
            while (cursor.MoveNext())
            {
                if (r == count) throw new InvalidOperationException($"Model '{Name}' gave more rows than the {count} images it was given.");
                getter(ref row);
                row.CopyTo(values, r * _slots);
                r++;
            }
            if (r != count) throw new InvalidOperationException($"Model '{Name}' gave {r} rows for {count} images; a black-box model must score every row.");
        }
        var scores = tensor(values, new long[] { count, _slots });
        // Probabilities (rows of non-negative values summing to 1, as ML.NET trainers give) become log-probabilities: the
        // same softmax and margins as logits, without the saturation that hides changes from a score-based search.
        if (values.All(v => v >= 0) && scores.sum(1).Minus(1).abs().max().item<float>() < 1e-3f)
            scores = scores.AtLeast(1e-30).log();
        return scores.index_select(1, tensor(_slotOfClass)).to(images.device);
    }
}
