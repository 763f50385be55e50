using Microsoft.ML.Adversarial;
using Microsoft.ML.Adversarial.MLNet;
using Microsoft.ML.Adversarial.Data;

namespace Microsoft.ML;

/// <summary>Data loaders and writers on <c>mlContext.Data</c>.</summary>
public static class AdversarialDataCatalogExtensions
{
    /// <summary>
    /// Loads Fashion-MNIST: a key-typed <c>Label</c> (key values "T-shirt/top", "Trouser", ...) and
    /// <c>Pixels</c> of type <c>Vector&lt;Single, 1, 28, 28&gt;</c> in [0, 1].
    /// </summary>
    /// <param name="catalog">The data catalog.</param>
    /// <param name="split">Training (60,000) or test (10,000) images.</param>
    /// <param name="count">Keep only this many rows (null: all).</param>
    /// <param name="subset">Which rows a <paramref name="count"/> keeps: the first, or a class-balanced selection.</param>
    /// <param name="folder">Folder with the IDX files; default the FASHION_MNIST_DIR variable or /usr/share/datasets/fashion-mnist.</param>
    public static IDataView LoadFromFashionMnist(this DataOperationsCatalog catalog, FashionMnistSplit split = FashionMnistSplit.Train,
        int? count = null, SubsetMode subset = SubsetMode.First, string? folder = null)
        => LoadFromFashionMnist(catalog, new FashionMnistOptions
        {
            Split = split, Count = count, Subset = subset, Folder = folder ?? FashionMnist.ResolveDefaultFolder(),
        });

    /// <summary>Loads Fashion-MNIST with full control over folder, split, subset and column names.</summary>
    public static IDataView LoadFromFashionMnist(this DataOperationsCatalog catalog, FashionMnistOptions options,
        string labelColumnName = ColumnNames.Label, string pixelColumnName = ColumnNames.Pixels)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        TorchBackend.EnsureLoaded();
        return new ImageSetDataView(FashionMnist.Load(options), labelColumnName, pixelColumnName);
    }

    /// <summary>An in-memory <see cref="ImageSet"/> (the TorchSharp-side data set) as an IDataView: key-typed label and pixel vector.</summary>
    public static IDataView LoadFromImageSet(this DataOperationsCatalog catalog, ImageSet images, string labelColumnName = ColumnNames.Label, string pixelColumnName = ColumnNames.Pixels)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        TorchBackend.EnsureLoaded();
        return new ImageSetDataView(images, labelColumnName, pixelColumnName);
    }

    /// <summary>
    /// Loads an image folder (one sub-folder per class) through ImageAnalytics into a key-typed <c>Label</c>, an
    /// <c>ImagePath</c> and <c>Pixels</c> of type <c>Vector&lt;Single, 3, H, W&gt;</c> (or 1 channel with grayscale) in [0, 1],
    /// in the caller's MLContext (its log and settings). Class names and order come from the folder's
    /// <c>class-names.json</c> when <see cref="SaveAsImageFolder"/> wrote one.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Data</c>.</param>
    /// <param name="folder">The folder with one sub-folder per class.</param>
    /// <param name="height">Height images are resized to; default <see cref="ImageFolderOptions.DefaultSize"/> (32, as the CLI).</param>
    /// <param name="width">Width images are resized to; default <see cref="ImageFolderOptions.DefaultSize"/>.</param>
    /// <param name="grayscale">One grey channel instead of R, G, B.</param>
    public static IDataView LoadFromImageFolder(this DataOperationsCatalog catalog, string folder, int height = ImageFolderOptions.DefaultSize,
        int width = ImageFolderOptions.DefaultSize, bool grayscale = false)
        => LoadFromImageFolder(catalog, new ImageFolderOptions { Folder = folder, Height = height, Width = width, Grayscale = grayscale });

    /// <summary>Loads an image folder with full control over size, colour and column names, in the caller's MLContext.</summary>
    public static IDataView LoadFromImageFolder(this DataOperationsCatalog catalog, ImageFolderOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return ImageFolder.LoadIn(MLNetEnvironment.From(catalog), options);
    }

    /// <summary>
    /// Writes a pixel column (<c>Vector&lt;Single, C, H, W&gt;</c> in [0, 1]) as PNG files in a class-per-folder layout
    /// that <see cref="LoadFromImageFolder(DataOperationsCatalog, string, int, int, bool)"/> reads back with the same class
    /// names and order (<c>class-names.json</c>). Files keep their source names (the <c>ImagePath</c> column when the data
    /// has it, or <paramref name="fileNameColumnName"/>), so clean and adversarial copies pair by name; otherwise each is
    /// named after its row index.
    /// </summary>
    /// <param name="catalog"><c>mlContext.Data</c>.</param>
    /// <param name="data">The rows to write.</param>
    /// <param name="folder">The output folder.</param>
    /// <param name="pixelColumnName">The pixel column written.</param>
    /// <param name="labelColumnName">The key label column naming each file's class folder.</param>
    /// <param name="fileNameColumnName">A text column naming each file; null: <c>ImagePath</c> when present, else the row index.</param>
    /// <returns>The number of files written.</returns>
    public static int SaveAsImageFolder(this DataOperationsCatalog catalog, IDataView data, string folder,
        string pixelColumnName = ColumnNames.Pixels, string labelColumnName = ColumnNames.Label, string? fileNameColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return ImageFolder.Save(data, folder, pixelColumnName, labelColumnName, fileNameColumnName);
    }
}
