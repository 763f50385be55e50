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
        string labelColumnName = "Label", string pixelColumnName = "Pixels")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ImageSetDataView(FashionMnist.Load(options), labelColumnName, pixelColumnName);
    }

    /// <summary>An in-memory <see cref="ImageSet"/> (the TorchSharp-side data set) as an IDataView: key-typed label and pixel vector.</summary>
    public static IDataView LoadFromImageSet(this DataOperationsCatalog catalog, ImageSet images, string labelColumnName = "Label", string pixelColumnName = "Pixels")
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new ImageSetDataView(images, labelColumnName, pixelColumnName);
    }

    /// <summary>
    /// Loads an image folder (one sub-folder per class) through ImageAnalytics into a key-typed <c>Label</c>
    /// and <c>Pixels</c> of type <c>Vector&lt;Single, 3, H, W&gt;</c> (or 1 channel with grayscale) in [0, 1].
    /// </summary>
    public static IDataView LoadFromImageFolder(this DataOperationsCatalog catalog, string folder, int height = 299, int width = 299, bool grayscale = false)
        => LoadFromImageFolder(catalog, new ImageFolderOptions { Folder = folder, Height = height, Width = width, Grayscale = grayscale });

    /// <summary>Loads an image folder with full control over size, colour and column names.</summary>
    public static IDataView LoadFromImageFolder(this DataOperationsCatalog catalog, ImageFolderOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        // The catalog does not expose its MLContext; image loading needs no seed or logging of the caller's.
        return ImageFolder.Load(new MLContext(), options);
    }

    /// <summary>
    /// Writes a pixel column (<c>Vector&lt;Single, C, H, W&gt;</c> in [0, 1]) as PNG files in a class-per-folder layout
    /// that <see cref="LoadFromImageFolder(DataOperationsCatalog, string, int, int, bool)"/> reads back.
    /// </summary>
    /// <returns>The number of files written.</returns>
    public static int SaveAsImageFolder(this DataOperationsCatalog catalog, IDataView data, string folder,
        string pixelColumnName = "Pixels", string labelColumnName = "Label", string? fileNameColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return ImageFolder.Save(data, folder, pixelColumnName, labelColumnName, fileNameColumnName);
    }
}
