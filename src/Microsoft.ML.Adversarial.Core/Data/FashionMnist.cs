namespace Microsoft.ML.Adversarial.Data;

/// <summary>Which half of Fashion-MNIST to read.</summary>
public enum FashionMnistSplit
{
    /// <summary>The 60,000 training images (train-*-ubyte).</summary>
    Train,
    /// <summary>The 10,000 test images (t10k-*-ubyte).</summary>
    Test,
}

/// <summary>How a subset of the data is chosen.</summary>
public enum SubsetMode
{
    /// <summary>The first N rows in file order.</summary>
    First,
    /// <summary>N rows with the classes as balanced as N allows: the first rows of each class, file order kept.</summary>
    Stratified,
}

/// <summary>Options for <see cref="FashionMnist.Load(FashionMnistOptions)"/>.</summary>
public sealed class FashionMnistOptions
{
    /// <summary>Folder with the four IDX files, gzipped or not. Default: the Debian package's folder.</summary>
    public string Folder { get; set; } = FashionMnist.DefaultFolder;
    /// <summary>Which split to read: the 60,000 training or the 10,000 test images.</summary>
    public FashionMnistSplit Split { get; set; } = FashionMnistSplit.Train;
    /// <summary>Number of rows to keep; null keeps all.</summary>
    public int? Count { get; set; }
    /// <summary>How to choose <see cref="Count"/> rows: the first ones, or balanced over the classes.</summary>
    public SubsetMode Subset { get; set; } = SubsetMode.First;
}

/// <summary>
/// Fashion-MNIST (Xiao et al., 2017) as an <see cref="ImageSet"/>: 1 x 28 x 28 grey images in [0, 1] and the ten
/// class names. <c>mlContext.Data.LoadFromFashionMnist</c> shows it as an IDataView.
/// </summary>
public static class FashionMnist
{
    /// <summary>Where Debian's <c>dataset-fashion-mnist</c> package puts the files.</summary>
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";

    /// <summary>Environment variable that overrides <see cref="DefaultFolder"/>.</summary>
    public const string FolderVariable = "FASHION_MNIST_DIR";

    /// <summary>The ten class names, in label order.</summary>
    public static readonly IReadOnlyList<string> ClassNames = new[]
    {
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
    };

    /// <summary>Images are <c>ImageSide</c> x <c>ImageSide</c> (28) grey pixels.</summary>
    public const int ImageSide = 28;

    /// <summary>The folder to use: <see cref="FolderVariable"/> when set, else <see cref="DefaultFolder"/>.</summary>
    public static string ResolveDefaultFolder()
        => Environment.GetEnvironmentVariable(FolderVariable) is { Length: > 0 } env ? env : DefaultFolder;

    /// <summary>Reads the split the options name into memory.</summary>
    /// <param name="options">Folder, split, count and subset.</param>
    public static ImageSet Load(FashionMnistOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Count is < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.Count, $"{nameof(FashionMnistOptions.Count)} must be positive or null (all rows); got {options.Count}.");
        string folder = options.Folder;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException(
                $"Fashion-MNIST folder '{folder}' does not exist. Install the data (Debian: run build/setup.sh, or apt-get install dataset-fashion-mnist) " +
                $"or pass the folder holding the four IDX files (FashionMnistOptions.Folder, or the {FolderVariable} environment variable).");
        string prefix = options.Split == FashionMnistSplit.Train ? "train" : "t10k";
        string imagesPath = FindFile(folder, $"{prefix}-images-idx3-ubyte");
        string labelsPath = FindFile(folder, $"{prefix}-labels-idx1-ubyte");

        var images = IdxFile.Read(imagesPath, 3);
        var labels = IdxFile.Read(labelsPath, 1);
        if (images.Dimensions[1] != ImageSide || images.Dimensions[2] != ImageSide)
            throw new InvalidDataException($"IDX file '{imagesPath}' holds {images.Dimensions[1]}x{images.Dimensions[2]} images; Fashion-MNIST images are {ImageSide}x{ImageSide}. Point the loader at the Fashion-MNIST files.");
        if (images.Dimensions[0] != labels.Dimensions[0])
            throw new InvalidDataException(
                $"'{imagesPath}' holds {images.Dimensions[0]} images but '{labelsPath}' holds {labels.Dimensions[0]} labels; " +
                "the two files belong to different sets or one is damaged. Use the matching pair from one Fashion-MNIST release.");
        for (int i = 0; i < labels.Data.Length; i++)
            if (labels.Data[i] >= ClassNames.Count)
                throw new InvalidDataException($"IDX file '{labelsPath}' has label {labels.Data[i]} at row {i}; Fashion-MNIST labels are 0-9. The file is corrupt or not Fashion-MNIST.");

        int[] rows = SelectRows(labels.Data, options.Count, options.Subset, ClassNames.Count);
        int imageSize = ImageSide * ImageSide;
        var pixels = new byte[(long)rows.Length * imageSize];
        var keys = new uint[rows.Length];
        for (int i = 0; i < rows.Length; i++)
        {
            Buffer.BlockCopy(images.Data, rows[i] * imageSize, pixels, i * imageSize, imageSize);
            keys[i] = labels.Data[rows[i]];
        }
        return ImageSet.FromBytes(pixels, keys, ClassNames, (1, ImageSide, ImageSide));
    }

    /// <summary>
    /// The same rows as <see cref="Load(FashionMnistOptions)"/>, read from the files on demand (<see cref="IdxImageSource"/>)
    /// instead of into memory: equal pixels and labels, row for row. A gzipped images file is decompressed once into
    /// <paramref name="cacheFolder"/> (<see cref="IdxImageSource.DefaultCacheFolder"/> when null).
    /// </summary>
    public static IImageSource Open(FashionMnistOptions options, string? cacheFolder = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Count is < 0)
            throw new ArgumentOutOfRangeException(nameof(options), options.Count, $"{nameof(FashionMnistOptions.Count)} must be positive or null (all rows); got {options.Count}.");
        if (!Directory.Exists(options.Folder))
            throw new DirectoryNotFoundException($"Fashion-MNIST folder '{options.Folder}' does not exist. Install the data (Debian: apt-get install dataset-fashion-mnist) " +
                $"or pass the folder holding the four IDX files (FashionMnistOptions.Folder, or the {FolderVariable} environment variable).");
        string prefix = options.Split == FashionMnistSplit.Train ? "train" : "t10k";
        var source = IdxImageSource.Open(FindFile(options.Folder, $"{prefix}-images-idx3-ubyte"), FindFile(options.Folder, $"{prefix}-labels-idx1-ubyte"), ClassNames, cacheFolder);
        if (source.ImageShape != (1, ImageSide, ImageSide))
            throw new InvalidDataException($"IDX file '{source.ImagesPath}' holds {source.ImageShape.Height}x{source.ImageShape.Width} images; Fashion-MNIST images are {ImageSide}x{ImageSide}.");
        var labels = new byte[source.RowCount];
        for (int i = 0; i < labels.Length; i++) labels[i] = (byte)source.GetLabel(i);
        int[] rows = SelectRows(labels, options.Count, options.Subset, ClassNames.Count);
        return rows.Length == source.RowCount ? source : source.Select(rows);
    }

    /// <summary>Indices of the rows a subset keeps, in file order.</summary>
    internal static int[] SelectRows(byte[] labels, int? count, SubsetMode mode, int classCount)
    {
        int n = labels.Length;
        if (count is null || count >= n) return Enumerable.Range(0, n).ToArray();
        if (mode == SubsetMode.First) return Enumerable.Range(0, count.Value).ToArray();
        return ImageSet.StratifiedRows(labels.Select(l => (uint)l).ToArray(), count.Value, classCount);
    }

    private static string FindFile(string folder, string name)
    {
        foreach (string candidate in new[] { name + ".gz", name })
        {
            string path = Path.Combine(folder, candidate);
            if (File.Exists(path)) return path;
        }
        throw new FileNotFoundException(
            $"Fashion-MNIST file '{name}' (or '{name}.gz') is missing from '{folder}'. The folder needs the four standard IDX files " +
            "(train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, gzipped or not); " +
            "on Debian, apt-get install dataset-fashion-mnist puts them in " + DefaultFolder + ".", Path.Combine(folder, name + ".gz"));
    }
}
