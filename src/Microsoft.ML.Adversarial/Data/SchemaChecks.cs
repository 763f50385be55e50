using Microsoft.ML.Adversarial;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>Schema checks with messages that name the column, what was found and what is expected.</summary>
internal static class SchemaChecks
{
    public static DataViewSchema.Column Find(DataViewSchema schema, string name, string role)
        => schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(name, NotFound(schema, name, role));

    private static string NotFound(DataViewSchema schema, string name, string role)
        => $"{role} column '{name}' not found. The input has: {string.Join(", ", schema.Where(c => !c.IsHidden).Select(c => $"{c.Name} ({c.Type})"))}.";

    /// <summary>
    /// When the default "Pixels" is missing but the input has vectors of Single (ML.NET pipelines often write
    /// "Features"), the option that names them; the library keeps "Pixels" on purpose (docs/design.md, "Column names").
    /// </summary>
    private static string PixelNameHint(DataViewSchema schema, string name)
    {
        var candidates = schema.Where(c => !c.IsHidden && c.Type is VectorDataViewType { ItemType: NumberDataViewType n } && n.RawType == typeof(float))
            .Select(c => c.Name).ToList();
        if (candidates.Count == 0) return "";
        return $" The library's image column is '{name}' by default (not ML.NET's 'Features': docs/design.md); if the images are in " +
            $"{string.Join(" or ", candidates.Select(c => $"'{c}'"))}, name it: featureColumnName: \"{candidates[0]}\" for the trainer, pixelColumnName for the loaders and ImageClassifier.";
    }

    /// <summary>The image shape (C, H, W) of a pixel column; checks it against <paramref name="expected"/> when given.</summary>
    public static (int C, int H, int W) PixelShape(DataViewSchema schema, string name, (int C, int H, int W)? expected = null)
    {
        var column = schema.GetColumnOrNull(name) ?? throw new ArgumentOutOfRangeException(name, NotFound(schema, name, "Pixel") + PixelNameHint(schema, name));
        if (column.Type is not VectorDataViewType { ItemType: NumberDataViewType item } vector || item.RawType != typeof(float))
            throw new ArgumentOutOfRangeException(name, $"Pixel column '{name}' has type {column.Type}; expected a vector of Single (Vector<Single, C, H, W>, as LoadFromFashionMnist or ExtractPixels(outputAsFloatArray: true) give).");
        if (!vector.IsKnownSize)
            throw new ArgumentOutOfRangeException(name, $"Pixel column '{name}' is a vector of unknown size; expected Vector<Single, C, H, W> of known size. Resize the images (ResizeImages) before ExtractPixels.");
        (int C, int H, int W) shape;
        if (vector.Dimensions.Length == 3) shape = (vector.Dimensions[0], vector.Dimensions[1], vector.Dimensions[2]);
        else if (expected is { } e && e.C * e.H * e.W == vector.Size) shape = e;
        else
        {
            int side = (int)Math.Round(Math.Sqrt(vector.Size));
            if (side * side != vector.Size)
                throw new ArgumentOutOfRangeException(name, $"Pixel column '{name}' is a flat vector of {vector.Size} values; expected Vector<Single, C, H, W> (dimensions tell the image shape).");
            shape = (1, side, side);
        }
        if (expected is { } exp && exp != shape)
            throw new ArgumentOutOfRangeException(name, $"Pixel column '{name}' holds {shape.C}x{shape.H}x{shape.W} images, but the model expects {exp.C}x{exp.H}x{exp.W}. Resize the images or use a model trained for this shape.");
        return shape;
    }

    /// <summary>The class count of a label column: a key (its count) or Single (null: read from the data).</summary>
    public static int? LabelClasses(DataViewSchema schema, string name)
    {
        var column = Find(schema, name, ColumnNames.Label);
        if (column.Type is KeyDataViewType key)
        {
            if (key.Count < 2 || key.Count > int.MaxValue) throw new ArgumentOutOfRangeException(name, $"Label column '{name}' is a key with {key.Count} values; a classifier needs at least 2.");
            return (int)key.Count;
        }
        if (column.Type == NumberDataViewType.Single) return null;
        throw new ArgumentOutOfRangeException(name, $"Label column '{name}' has type {column.Type}; expected a key (MapValueToKey) or Single class index.");
    }

    /// <summary>What to do when a pixel column does not fit a model's <paramref name="range"/>, on the ML.NET path.</summary>
    public static string RangeFix(InputRange range, string pixelColumnName)
        => range.Description == InputRange.UnitInterval.Description
            ? $"Scale pixel column '{pixelColumnName}' to [0, 1] (ExtractPixels(..., scaleImage: 1f / 255)), remove NaN pixels, or, for a model trained on another range, set the trainer's Options.InputRange."
            : $"Feed pixel column '{pixelColumnName}' in the model's range {range} (ExtractPixels' scaleImage/offsetImage), and remove NaN pixels.";

    public static DataViewSchema.Annotations TextVectorAnnotation(string kind, IReadOnlyList<string> values)
    {
        var names = values.Select(v => v.AsMemory()).ToArray();
        var builder = new DataViewSchema.Annotations.Builder();
        builder.Add(kind, new VectorDataViewType(TextDataViewType.Instance, names.Length),
            (ref VBuffer<ReadOnlyMemory<char>> dst) => dst = new VBuffer<ReadOnlyMemory<char>>(names.Length, (ReadOnlyMemory<char>[])names.Clone()));
        return builder.ToAnnotations();
    }

    /// <summary>
    /// Makes a <see cref="SchemaShape.Column"/>, whose constructor ML.NET keeps internal; estimators need it to
    /// describe the columns they add.
    /// </summary>
    // SchemaShape.Column's constructor is internal; the library compiles against ML.NET with internals visible (docs/design.md).
    public static SchemaShape.Column ShapeColumn(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey, SchemaShape? annotations = null)
        => new(name, kind, itemType, isKey, annotations ?? new SchemaShape(Array.Empty<SchemaShape.Column>()));

    /// <summary>Annotations holding one text vector (SlotNames or KeyValues), as ML.NET's own scorers declare them.</summary>
    public static SchemaShape TextVectorAnnotationShape(string kind)
        => new(new[] { ShapeColumn(kind, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false) });

    public static SchemaShape With(SchemaShape input, params SchemaShape.Column[] added)
    {
        var columns = input.ToDictionary(c => c.Name);
        foreach (var c in added) columns[c.Name] = c;
        return new SchemaShape(columns.Values);
    }
}
