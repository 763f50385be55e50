using Microsoft.ML.Adversarial;
using Microsoft.ML.Data;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>
/// The one way an <see cref="IDataView"/> becomes an <see cref="ImageSet"/> (training, evaluation, transfer, the CLI):
/// checks the pixel and label columns, then reads every row, refusing missing labels and non-finite pixels by row.
/// </summary>
public static class ImageSetReader
{
    /// <summary>
    /// Reads a pixel vector column (<c>Vector&lt;Single, C, H, W&gt;</c>) and a key (or Single class index) label column
    /// into memory, e.g. the output of <c>LoadFromImageFolder</c>.
    /// </summary>
    /// <param name="data">The data to read.</param>
    /// <param name="pixelColumnName">The pixel column.</param>
    /// <param name="labelColumnName">The label column: a key whose key values name the classes, or Single indices 0, 1, 2, ...</param>
    /// <param name="expectedShape">When given, the images must have this (C, H, W) shape (a model's input).</param>
    public static ImageSet Read(IDataView data, string pixelColumnName = ColumnNames.Pixels, string labelColumnName = ColumnNames.Label, (int C, int H, int W)? expectedShape = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var shape = SchemaChecks.PixelShape(data.Schema, pixelColumnName, expectedShape);
        SchemaChecks.LabelClasses(data.Schema, labelColumnName);
        if (data is ImageSetDataView view && view.PixelColumnName == pixelColumnName && view.LabelColumnName == labelColumnName) return view.Images;
        return ReadRows(data, pixelColumnName, labelColumnName, shape);
    }

    /// <summary>
    /// Reads the rows as <see cref="Read"/> does (same checks, classes and order), but into a temporary file
    /// (<see cref="RowFileSource"/>) instead of memory: one pass over the view, after which training reads the rows by
    /// offset, so the data may be larger than memory. Dispose the result to delete the file.
    /// </summary>
    /// <param name="data">The data to read.</param>
    /// <param name="pixelColumnName">The pixel column.</param>
    /// <param name="labelColumnName">The label column (as for <see cref="Read"/>).</param>
    /// <param name="expectedShape">When given, the images must have this (C, H, W) shape.</param>
    /// <param name="folder">Where the file goes; null: the temporary folder.</param>
    public static RowFileSource ReadToFile(IDataView data, string pixelColumnName = ColumnNames.Pixels, string labelColumnName = ColumnNames.Label, (int C, int H, int W)? expectedShape = null,
        string? folder = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var shape = SchemaChecks.PixelShape(data.Schema, pixelColumnName, expectedShape);
        SchemaChecks.LabelClasses(data.Schema, labelColumnName);
        using var writer = RowFileSource.Create(shape, folder);
        var (labels, names) = ReadRows(data, pixelColumnName, labelColumnName, shape, writer.Append);
        return writer.Complete(names.Names);
    }

    private static ImageSet ReadRows(IDataView input, string pixelColumn, string labelColumn, (int C, int H, int W) shape)
    {
        var pixels = new List<float>();
        var (labels, names) = ReadRows(input, pixelColumn, labelColumn, shape, (row, _) => pixels.AddRange(row));
        return ImageSet.FromFloats(pixels.ToArray(), labels.ToArray(), names.Names, shape, names.AreIndices);
    }

    private delegate void RowSink(ReadOnlySpan<float> pixels, uint label);

    /// <summary>Every row, checked (finite pixels, present labels), to <paramref name="sink"/>; then the labels and class names.</summary>
    private static (List<uint> Labels, (string[] Names, bool AreIndices) Names) ReadRows(IDataView input, string pixelColumn, string labelColumn, (int C, int H, int W) shape, RowSink sink)
    {
        var pix = input.Schema[pixelColumn];
        var lab = input.Schema[labelColumn];
        int size = shape.C * shape.H * shape.W;
        var row = new float[size];
        var labels = new List<uint>();
        using var cursor = input.GetRowCursor(new[] { pix, lab });
        var pixelGetter = cursor.GetGetter<VBuffer<float>>(pix);
        var buffer = default(VBuffer<float>);
        Func<uint> readLabel;
        if (lab.Type is KeyDataViewType)
        {
            var g = cursor.GetGetter<uint>(lab);
            uint k = 0;
            readLabel = () =>
            {
                g(ref k);
                if (k == 0) throw new InvalidDataException($"Row {cursor.Position}: label column '{labelColumn}' is missing (key 0). Filter such rows out (FilterRowsByMissingValues) first.");
                return k - 1;
            };
        }
        else
        {
            var g = cursor.GetGetter<float>(lab);
            float f = 0;
            readLabel = () =>
            {
                g(ref f);
                if (!(f >= 0) || f != Math.Floor(f)) throw new InvalidDataException($"Row {cursor.Position}: label column '{labelColumn}' holds {f}; a Single label must be a class index 0, 1, 2, ...");
                return (uint)f;
            };
        }
        while (cursor.MoveNext())
        {
            pixelGetter(ref buffer);
            buffer.CopyTo(row);
            foreach (float v in row)
                if (!float.IsFinite(v)) throw new InvalidDataException($"Row {cursor.Position}: pixel column '{pixelColumn}' holds {v}; clean NaN or infinite pixels out first.");
            uint label = readLabel();
            sink(row, label);
            labels.Add(label);
        }
        if (labels.Count == 0) throw new InvalidDataException("The training data has no rows.");
        var names = KeyNames(lab, labels, labelColumn);
        if (labels.Distinct().Count() < 2)
            throw new InvalidDataException($"Label column '{labelColumn}' holds a single class ({names.Names[labels[0]]}); a classifier needs examples of at least 2 classes.");
        return (labels, names);
    }

    /// <summary>The class names: a key's key values; else the indices, which then must be the classes 0..K-1 of the data.</summary>
    private static (string[] Names, bool AreIndices) KeyNames(DataViewSchema.Column label, List<uint> labels, string labelColumn)
    {
        if (label.Type is KeyDataViewType key)
            return ImageFolder.KeyNames(label) is { } named ? (named, false) : (Indices((int)key.Count), true);
        // A Single label is a class index; indices far beyond the classes present mean other values (ids, prices) that
        // would build a classifier with as many outputs as the largest value.
        long classes = labels.Max() + 1L;
        int present = labels.Distinct().Count();
        if (classes > 2L * present + 8)
            throw new InvalidDataException(
                $"Label column '{labelColumn}' is a Single whose values reach {classes - 1}, but only {present} distinct values occur: a Single label must be a " +
                $"class index 0..K-1, and this would build a classifier with {classes} outputs. Map the labels to keys first (MapValueToKey).");
        return (Indices((int)classes), true);
    }

    private static string[] Indices(int count) => Enumerable.Range(0, count).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToArray();
}
