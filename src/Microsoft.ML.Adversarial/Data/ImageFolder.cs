using Microsoft.ML.Adversarial;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms.Image;

namespace Microsoft.ML.Adversarial.Data;

/// <summary>Options for reading an ImageNet-style folder: one sub-folder per class holding JPEG or PNG files.</summary>
public sealed class ImageFolderOptions
{
    /// <summary>
    /// Side images are resized to when no size is given, the same in the library and the CLI (<c>--image-size</c>):
    /// 32, the size of the small networks trained from scratch on a user's data. Pass 299 (Inception v3) or 224
    /// (most torchvision networks) for ImageNet models.
    /// </summary>
    public const int DefaultSize = 32;

    /// <summary>The folder with one sub-folder per class.</summary>
    public required string Folder { get; set; }
    /// <summary>Height the images are resized to.</summary>
    public int Height { get; set; } = DefaultSize;
    /// <summary>Width the images are resized to.</summary>
    public int Width { get; set; } = DefaultSize;
    /// <summary>Extract one grey channel instead of R, G, B.</summary>
    public bool Grayscale { get; set; }
    /// <summary>Name of the key-typed label column (values: the class folder names).</summary>
    public string LabelColumnName { get; set; } = ColumnNames.Label;
    /// <summary>Name of the pixel column, <c>Vector&lt;Single, C, H, W&gt;</c> with values in [0, 1].</summary>
    public string PixelColumnName { get; set; } = ColumnNames.Pixels;
    /// <summary>Column with each image's path relative to <see cref="Folder"/>.</summary>
    public string ImagePathColumnName { get; set; } = ImageFolder.DefaultImagePathColumn;
    /// <summary>How images are fitted to <see cref="Height"/> x <see cref="Width"/> (default: scale, then centre crop).</summary>
    public ImageResizingEstimator.ResizingKind Resizing { get; set; } = ImageResizingEstimator.ResizingKind.IsoCrop;
    /// <summary>Largest image (width x height) accepted; larger files are refused before decoding (decompression bombs).</summary>
    public long MaxPixels { get; set; } = ImageHeader.DefaultMaxPixels;
    /// <summary>
    /// Grey level in [0, 1] that images with transparency are composited on (alpha "over" this background, per
    /// channel): 1 (the default) is white, the convention for documents and web images; 0 is black. A pixel of
    /// colour c and alpha a reads as a * c + (1 - a) * Background, so fully transparent pixels read as the background
    /// and opaque images are unchanged. With <see cref="ImageResizingEstimator.ResizingKind.IsoPad"/> the padding is
    /// transparent and so reads as the background too.
    /// </summary>
    public float Background { get; set; } = 1f;
}

/// <summary>
/// Reads class-per-folder image sets through ML.NET ImageAnalytics
/// (<c>LoadImages</c> → <c>ResizeImages</c> → <c>ExtractPixels</c>) into the same <c>Label</c> + <c>Pixels</c>
/// shape as <see cref="FashionMnist"/> (<c>Vector&lt;Single, C, H, W&gt;</c>, values in [0, 1]), and writes pixel
/// columns back as PNG files in the same layout. Every file is checked (header, then a full decode) before any row is
/// read, and a file that fails is named in the error; images with transparency are composited on
/// <see cref="ImageFolderOptions.Background"/> (white by default).
/// </summary>
public static class ImageFolder
{
    /// <summary>The file extensions read as images (case-insensitive).</summary>
    public static readonly IReadOnlyCollection<string> ImageExtensions = new[] { ".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp" };

    private sealed class ClassName
    {
        public string Label { get; set; } = "";
    }

    private sealed class ImageEntry
    {
        // Not "ImagePath": the output's path column (ImageFolderOptions.ImagePathColumnName) is a copy of this one,
        // and this one is dropped; under the same name the copy was dropped with it.
        public string SourcePath { get; set; } = "";
        public string Label { get; set; } = "";
    }

    /// <summary>
    /// Class names and the images of each. The classes are the sub-folders, named and ordered by the folder's
    /// <see cref="ClassMatch.ClassNamesFile"/> when it has one (written by <see cref="Save"/>, so "T-shirt/top" reads back as
    /// itself, in its key order; classes it lists without a folder are kept, with no images), and otherwise named after
    /// their folders in ordinal order; folders the file does not list follow, named after themselves.
    /// </summary>
    public static (IReadOnlyList<string> Classes, IReadOnlyList<(string RelativePath, string Label)> Images) Scan(string folder)
    {
        var (classes, files) = ScanFiles(folder);
        var images = new (string RelativePath, string Label)[files.Count];
        for (int i = 0; i < images.Length; i++) images[i] = (files.PathOf(i), classes[files.ClassOf(i)]);
        return (classes, images);
    }

    /// <summary>
    /// <see cref="Scan"/>'s classes and files (same rules, same order), the files held compactly (<see cref="ImageFileList"/>:
    /// UTF-8 paths and class indices), as the streaming <see cref="ImageFolderSource"/> keeps them.
    /// </summary>
    internal static (IReadOnlyList<string> Classes, ImageFileList Files) ScanFiles(string folder)
    {
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"Image folder '{folder}' does not exist. Pass a folder with one sub-folder per class, each holding JPEG or PNG files.");
        var classes = Directory.GetDirectories(folder).Select(Path.GetFileName).OfType<string>()
            .Where(n => !n.StartsWith('.')).OrderBy(n => n, StringComparer.Ordinal).ToList();
        if (classes.Count == 0)
            throw new InvalidDataException($"Image folder '{folder}' has no sub-folders. Put each class's images in a sub-folder named after the class (for example '{folder}/cat/1.png').");
        var named = ClassMatch.ReadClassNames(folder);
        var nameOf = classes.ToDictionary(c => c, c => c, StringComparer.Ordinal);
        if (named is not null)
        {
            // An empty class name stays its folder's ("_"): ML.NET reads empty text as a missing key. ClassMatch still
            // matches it to the model's "" class through the folder name.
            // A folder the file names is the one on disk with the same name once normalised (a folder copied from macOS
            // is listed decomposed while the file holds the name as written).
            var onDisk = classes;
            string Disk(string dir) => onDisk.FirstOrDefault(c => c == dir) ?? onDisk.FirstOrDefault(c => ClassMatch.SameName(c, dir)) ?? dir;
            named = named.Select(n => (n.Name, Folder: Disk(n.Folder))).ToList();
            foreach (var (name, dir) in named) nameOf[dir] = name.Length > 0 ? name : dir;
            var listed = named.Select(n => n.Folder).ToList();
            classes = listed.Concat(classes.Where(c => !listed.Contains(c, StringComparer.Ordinal))).ToList();
            var clash = classes.GroupBy(c => nameOf[c], StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
            if (clash is not null)
                throw new InvalidDataException($"Image folder '{folder}': {ClassMatch.ClassNamesFile} names a folder '{clash.Key}' while another folder is called that. " +
                    $"Rename the folder or fix {ClassMatch.ClassNamesFile}.");
        }
        // Two folders whose names differ only in Unicode normalisation ("café" composed, and "cafe" + U+0301 as macOS
        // writes it) look the same and are one class to ClassMatch: refused, both named with their code points.
        if (ClassMatch.NormalizationTwins(classes.Select(c => nameOf[c])) is { } twins)
        {
            string Folder(string name) => classes.First(c => nameOf[c] == name);
            throw new InvalidDataException($"Image folder '{folder}' has two class folders whose names differ only in their Unicode normalisation, " +
                $"so they look the same but are different folders: {ClassMatch.Quote(Folder(twins.First), codePoints: true)} and " +
                $"{ClassMatch.Quote(Folder(twins.Second), codePoints: true)}. Classes are matched by name: move the images of one into the other " +
                "and remove it (or rename one).");
        }
        var images = new ImageFileList.Builder(classes.Count);
        for (int c = 0; c < classes.Count; c++)
        {
            string cls = classes[c];
            if (!Directory.Exists(Path.Combine(folder, cls))) continue;
            // File names only (one class at a time), sorted ordinally: the order of the full paths, which share the folder.
            // Hidden files are skipped: among them are temporary files an interrupted Save may leave.
            var all = Directory.EnumerateFiles(Path.Combine(folder, cls)).Select(Path.GetFileName).OfType<string>().Where(f => !f.StartsWith('.')).ToList();
            var files = all.Where(f => ImageExtensions.Contains(Path.GetExtension(f).ToLowerInvariant())).Order(StringComparer.Ordinal).ToList();
            // A class folder with nothing the reader takes would be a class with no images (or, for the caller, a class
            // missing from the data): refused, saying what is there.
            if (files.Count == 0)
            {
                var skipped = all.Order(StringComparer.Ordinal).ToList();
                throw new InvalidDataException($"Image folder '{folder}': class folder '{cls}' holds no image files the reader takes ({string.Join(", ", ImageExtensions)})" +
                    (skipped.Count == 0 ? "; it is empty. Put images in it, or " : $"; {skipped.Count} files skipped ({string.Join(", ", skipped.GroupBy(f => Path.GetExtension(f).ToLowerInvariant()).Select(g => $"{(g.Key.Length == 0 ? "no extension" : g.Key)}: {g.Count()}"))}; " +
                        $"e.g. {string.Join(", ", skipped.Take(3).Select(f => $"'{f}'"))}). Convert them to PNG or JPEG, or ") +
                    "remove the folder: a class without images cannot be trained or evaluated.");
            }
            foreach (string f in files) images.Add(Path.Combine(cls, f), c);
        }
        var list = images.Build();
        if (list.Count == 0)
            throw new InvalidDataException($"Image folder '{folder}' has class sub-folders ({string.Join(", ", classes.Take(5))}...) but no image files ({string.Join(", ", ImageExtensions)}) in them.");
        return (classes.Select(c => nameOf[c]).ToList(), list);
    }

    /// <summary>
    /// What the readers leave out of <paramref name="folder"/> or take twice, in words, for the caller to show (the CLI
    /// prints them): files in class folders in formats the reader does not take (counts per class, the first names), and
    /// files whose bytes are the same in more than one place (the same image in two class folders is trained and scored
    /// as both classes). Empty when there is nothing to say. A class with no readable image at all is an error of the
    /// readers themselves.
    /// </summary>
    /// <param name="folder">An image folder: one sub-folder per class.</param>
    public static IReadOnlyList<string> Warnings(string folder)
    {
        var warnings = new List<string>();
        if (!Directory.Exists(folder)) return warnings;
        var classes = Directory.GetDirectories(folder).Select(Path.GetFileName).OfType<string>().Where(n => !n.StartsWith('.')).Order(StringComparer.Ordinal).ToList();
        var files = classes.SelectMany(c => Directory.EnumerateFiles(Path.Combine(folder, c)).Select(Path.GetFileName).OfType<string>()
            .Where(f => !f.StartsWith('.')).Order(StringComparer.Ordinal).Select(f => (Class: c, Name: f))).ToList();
        bool Taken(string name) => ImageExtensions.Contains(Path.GetExtension(name).ToLowerInvariant());
        var skipped = files.Where(f => !Taken(f.Name)).ToList();
        if (skipped.Count > 0)
            warnings.Add($"Image folder '{folder}': skipped {skipped.Count} files the reader does not take (it reads {string.Join(", ", ImageExtensions)}): " +
                string.Join(", ", skipped.GroupBy(f => f.Class).Select(g => $"{g.Key} {g.Count()}")) + "; e.g. " +
                string.Join(", ", skipped.Take(5).Select(f => $"'{f.Class}/{f.Name}'")) + ". Convert them to PNG or JPEG to use them.");
        // Same bytes: only files that share their length are hashed. On a folder too large to read for that (past
        // DuplicateCheckBytes), only files that also share their name: the copy of a file into a second class folder.
        var taken = files.Where(f => Taken(f.Name)).Select(f => (Path: Path.Combine(folder, f.Class, f.Name), f.Name)).Select(f => (f.Path, f.Name, Length: new FileInfo(f.Path).Length)).ToList();
        var candidates = taken.GroupBy(f => f.Length).Where(g => g.Count() > 1).ToList();
        if (candidates.Sum(g => g.Sum(f => f.Length)) > DuplicateCheckBytes)
            candidates = taken.GroupBy(f => (f.Length, f.Name)).Where(g => g.Count() > 1).Select(g => g.GroupBy(f => f.Length).First()).ToList();
        var same = candidates
            .SelectMany(g => g.Select(f => f.Path).GroupBy(f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f)))))
            .Where(g => g.Count() > 1).Select(g => g.Select(f => Path.GetRelativePath(folder, f)).ToList()).ToList();
        if (same.Count > 0)
            warnings.Add($"Image folder '{folder}': {same.Sum(g => g.Count)} files have the same bytes as another ({same.Count} groups), e.g. " +
                string.Join("; ", same.Take(3).Select(g => string.Join(" = ", g.Select(f => $"'{f}'")))) +
                ". Each copy is read as an image of its folder's class; remove the copies unless that is meant.");
        return warnings;
    }

    /// <summary>At most this many bytes are read to find copies by content (256 MiB); past it, only same-named files are compared.</summary>
    private const long DuplicateCheckBytes = 256L << 20;

    /// <summary>Loads an image folder in <paramref name="mlContext"/> (its log, cancellation and settings).</summary>
    /// <param name="mlContext">The caller's context.</param>
    /// <param name="options">Folder, size, colour and column names.</param>
    public static IDataView Load(MLContext mlContext, ImageFolderOptions options) => LoadIn(mlContext, options);

    /// <summary>Loads an image folder in the ML.NET environment <paramref name="env"/> (the caller's context, behind a catalog).</summary>
    internal static IDataView LoadIn(IHostEnvironment env, ImageFolderOptions options)
    {
        ArgumentNullException.ThrowIfNull(env);
        CheckOptions(options);
        var (classes, images) = Scan(options.Folder);
        // What the reader leaves out or takes twice goes to the caller's MLContext.Log (as the CLI prints it), so a
        // library user sees it too; ML.NET raises channel warnings as LoggingEventArgs of kind Warning.
        var warnings = Warnings(options.Folder);
        if (warnings.Count > 0)
        {
            using var channel = env.Start("LoadFromImageFolder");
            foreach (var warning in warnings) channel.Warning(warning);
        }
        // Check every file's header first: an empty, foreign or gigantic file fails here, naming the file, instead of
        // deep inside the image decoder (or by exhausting memory).
        var files = images.Select(i => Path.Combine(options.Folder, i.RelativePath)).ToList();
        foreach (string file in files) ImageHeader.Check(file, options.MaxPixels);
        // Then decode each once: the decoder ML.NET uses reads corrupt pixel data as blank pixels without an error.
        if (ImageDecodeCheck.FirstUndecodable(files, out string? why) is { } bad)
            throw new InvalidDataException($"Image file '{bad}' is corrupt: its header is fine but its pixel data does not decode ({why}); " +
                "it would be read as blank pixels. Copy the file again, or remove it.");
        var entries = Entries(env, images);
        return Decode(Pipeline(env, options, classes).Fit(entries), entries, options, files);
    }

    /// <summary>Throws, naming the setting, when the image size or background is out of range.</summary>
    internal static void CheckOptions(ImageFolderOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (options.Height < 1 || options.Width < 1)
            throw new ArgumentOutOfRangeException(nameof(options), $"Image size must be positive; got {options.Height}x{options.Width}.");
        if (!(options.Background is >= 0f and <= 1f))
            throw new ArgumentOutOfRangeException(nameof(options), $"ImageFolderOptions.Background is {options.Background}; use a grey level in [0, 1] (1 = white, 0 = black).");
    }

    /// <summary>The (path relative to the folder, class) rows the pipeline reads.</summary>
    internal static IDataView Entries(IHostEnvironment env, IEnumerable<(string RelativePath, string Label)> images)
        => new DataOperationsCatalog(env).LoadFromEnumerable(images.Select(i => new ImageEntry { SourcePath = i.RelativePath, Label = i.Label }).ToList());

    /// <summary>
    /// The decoding pipeline: ImageAnalytics LoadImages → EXIF orientation (<see cref="ImageOrientation"/>) → ResizeImages → (grey) → ExtractPixels with alpha; the one place
    /// image files become pixels (<see cref="Load"/> and the streaming <see cref="ImageFolderSource"/>).
    /// </summary>
    internal static IEstimator<ITransformer> Pipeline(IHostEnvironment env, ImageFolderOptions options, IReadOnlyList<string> classes)
    {
        var data = new DataOperationsCatalog(env);
        var transforms = new TransformsCatalog(env);
        const string imageColumn = "__Image";
        var keyData = classes.Select(c => new ClassName { Label = c }).ToList();
        IEstimator<ITransformer> pipeline = transforms.Conversion.MapValueToKey(
                options.LabelColumnName, nameof(ImageEntry.Label), keyOrdinality: Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByOccurrence, // the order of Scan's classes
                keyData: data.LoadFromEnumerable(keyData))
            .Append(transforms.CopyColumns(options.ImagePathColumnName, nameof(ImageEntry.SourcePath)))
            .Append(transforms.LoadImages(imageColumn, options.Folder, nameof(ImageEntry.SourcePath)))
            .Append(new ExifOrientationStep(imageColumn, nameof(ImageEntry.SourcePath), options.Folder)) // photos as shown, before the resize
            .Append(transforms.ResizeImages(imageColumn, options.Width, options.Height, imageColumn, options.Resizing));
        if (options.Grayscale)
            pipeline = pipeline.Append(transforms.ConvertToGrayscale(imageColumn));
        // Alpha comes out as an extra first plane; ImageFolderDataView composites on the background and drops it.
        pipeline = pipeline
            .Append(transforms.ExtractPixels(options.PixelColumnName, imageColumn,
                colorsToExtract: ImagePixelExtractingEstimator.ColorBits.Alpha | (options.Grayscale ? ImagePixelExtractingEstimator.ColorBits.Red : ImagePixelExtractingEstimator.ColorBits.Rgb),
                orderOfExtraction: ImagePixelExtractingEstimator.ColorsOrder.ARGB, scaleImage: 1f / 255f, outputAsFloatArray: true))
            .Append(transforms.DropColumns(imageColumn, nameof(ImageEntry.SourcePath)));
        if (options.LabelColumnName != nameof(ImageEntry.Label))
            pipeline = pipeline.Append(transforms.DropColumns(nameof(ImageEntry.Label)));
        return pipeline;
    }

    /// <summary>The fitted pipeline applied to <paramref name="entries"/>, with alpha composited and errors naming files.</summary>
    internal static IDataView Decode(ITransformer fitted, IDataView entries, ImageFolderOptions options, IReadOnlyList<string> files)
        => new ImageFolderDataView(fitted.Transform(entries), options.PixelColumnName, options.Background, options.Folder, files);

    /// <summary>
    /// Writes each row's pixels (<c>Vector&lt;Single, C, H, W&gt;</c> in [0, 1], C = 1 or 3) as a PNG under
    /// <c>folder/&lt;class&gt;/</c>. Values are clamped to [0, 1] and rounded to the nearest byte, so a PNG read back
    /// with <see cref="Load"/> gives the same pixels to within 1/510. Each file is written under a temporary name
    /// and renamed, so no half-written PNG is left under its final name, and a write that fails (full disk) removes its
    /// temporary file. Class folders are named by <see cref="ClassMatch.FolderNames"/>, and <see cref="ClassMatch.ClassNamesFile"/>
    /// records each class's name and order, so <see cref="Load"/> gives back the same key values ("T-shirt/top", not
    /// "T-shirt_top") in the same order; every file is checked to lie inside <paramref name="folder"/>, whatever the class names say.
    /// Files keep their source names: each row's file is named after <paramref name="fileNameColumnName"/> (default: the
    /// <c>ImagePath</c> column <see cref="Load"/> writes, when the data has it), so a clean and an adversarial image of the
    /// same source share a name; without such a column, after the row's index ("000042.png"). Two rows whose names meet in
    /// one folder are kept apart with '~' and the row index.
    /// </summary>
    /// <returns>The number of images written.</returns>
    public static int Save(IDataView data, string folder, string pixelColumnName = ColumnNames.Pixels, string labelColumnName = ColumnNames.Label,
        string? fileNameColumnName = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var pixelColumn = data.Schema.GetColumnOrNull(pixelColumnName)
            ?? throw new ArgumentException($"Column '{pixelColumnName}' not found; the data has: {string.Join(", ", data.Schema.Select(c => c.Name))}.", nameof(pixelColumnName));
        if (pixelColumn.Type is not VectorDataViewType { ItemType: NumberDataViewType nt } vt || nt.RawType != typeof(float)
            || vt.Dimensions.Length != 3 || (vt.Dimensions[0] != 1 && vt.Dimensions[0] != 3))
            throw new ArgumentException($"Column '{pixelColumnName}' is {pixelColumn.Type}; writing images needs Vector<Single, C, H, W> with C = 1 or 3 (the shape ExtractPixels and the Fashion-MNIST loader give).", nameof(pixelColumnName));
        int channels = vt.Dimensions[0], height = vt.Dimensions[1], width = vt.Dimensions[2];

        var labelColumn = data.Schema.GetColumnOrNull(labelColumnName);
        string[]? classNames = labelColumn is { } lc ? KeyNames(lc) : null;
        DataViewSchema.Column? fileColumn = fileNameColumnName is null
            ? data.Schema.GetColumnOrNull(DefaultImagePathColumn) is { Type: TextDataViewType } path ? path : null
            : data.Schema.GetColumnOrNull(fileNameColumnName)
                ?? throw new ArgumentException($"Column '{fileNameColumnName}' not found; the data has: {string.Join(", ", data.Schema.Select(c => c.Name))}.", nameof(fileNameColumnName));

        Directory.CreateDirectory(folder);
        string root = Path.GetFullPath(folder);
        string rootPrefix = Path.EndsInDirectorySeparator(root) ? root : root + Path.DirectorySeparatorChar;
        var folderNames = classNames is null ? null : ClassMatch.FolderNames(classNames, MissingFolder);
        if (classNames is not null) ClassMatch.WriteClassNames(root, classNames, folderNames!);
        var usedNames = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var needed = new List<DataViewSchema.Column> { pixelColumn };
        if (labelColumn is { } l) needed.Add(l);
        if (fileColumn is { } fc) needed.Add(fc);
        using var cursor = data.GetRowCursor(needed);
        var pixelGetter = cursor.GetGetter<VBuffer<float>>(pixelColumn);
        ValueGetter<uint>? labelGetter = labelColumn is { } lcol && lcol.Type is KeyDataViewType ? cursor.GetGetter<uint>(lcol) : null;
        ValueGetter<ReadOnlyMemory<char>>? fileGetter = fileColumn is { } fcol ? cursor.GetGetter<ReadOnlyMemory<char>>(fcol) : null;
        var buffer = default(VBuffer<float>);
        var rgba = new byte[height * width * 4];
        int written = 0;
        uint key = 0;
        var name = default(ReadOnlyMemory<char>);
        while (cursor.MoveNext())
        {
            pixelGetter(ref buffer);
            var values = buffer.DenseValues().ToArray();
            int plane = height * width;
            for (int p = 0; p < plane; p++)
            {
                for (int c = 0; c < 3; c++)
                    rgba[p * 4 + c] = ToByte(values[(channels == 1 ? 0 : c) * plane + p]);
                rgba[p * 4 + 3] = 255;
            }
            string sub = "";
            if (labelGetter != null)
            {
                labelGetter(ref key);
                sub = key == 0 ? MissingFolder : folderNames is { } fn && key - 1 < fn.Count ? fn[(int)key - 1] : (key - 1).ToString(CultureInfo.InvariantCulture);
            }
            string fileName;
            if (fileGetter != null)
            {
                fileGetter(ref name);
                fileName = ClassMatch.FolderName(Path.GetFileNameWithoutExtension(name.ToString())) + ".png";
            }
            else fileName = RowFileName(cursor.Position);
            if (!usedNames.Add(Path.Combine(sub, fileName)))
            {
                fileName = $"{Path.GetFileNameWithoutExtension(fileName)}~{cursor.Position}.png";
                usedNames.Add(Path.Combine(sub, fileName));
            }
            string dir = Path.Combine(root, sub);
            string final = Path.GetFullPath(Path.Combine(dir, fileName));
            // The names come from data (a model file's class names, a file-name column): never write outside the folder.
            if (!final.StartsWith(rootPrefix, StringComparison.Ordinal))
                throw new InvalidDataException($"Image '{fileName}' of class folder '{sub}' would be written to '{final}', outside the output folder '{root}'. Rename the class or file.");
            Directory.CreateDirectory(dir);
            string tmp = Path.Combine(dir, "." + Path.GetFileNameWithoutExtension(fileName) + ".tmp.png");
            try
            {
                using (var image = MLImage.CreateFromPixels(width, height, MLPixelFormat.Rgba32, rgba))
                    image.Save(tmp);
                File.Move(tmp, final, overwrite: true);
            }
            catch
            {
                File.Delete(tmp);
                throw;
            }
            written++;
        }
        return written;
    }

    /// <summary>
    /// The files <see cref="Save"/> writes for data without a file-name column, relative to its folder: row i of class
    /// labels[i] (0-based) goes to that class's folder (<see cref="ClassMatch.FolderNames"/>) as "00000i.png". Lets a
    /// caller check before writing what the names will be (the CLI's attack keeps the user's own files that way).
    /// </summary>
    public static IReadOnlyList<string> RowFiles(IReadOnlyList<string> classNames, IReadOnlyList<uint> labels)
    {
        var folders = ClassMatch.FolderNames(classNames, MissingFolder);
        return labels.Select((label, row) => Path.Combine(folders[(int)label], RowFileName(row))).ToArray();
    }

    private static string RowFileName(long row) => string.Create(CultureInfo.InvariantCulture, $"{row:D6}.png");

    /// <summary>The path column <see cref="Save"/> names files after when no other is given (<see cref="ImageFolderOptions.ImagePathColumnName"/>'s default).</summary>
    public const string DefaultImagePathColumn = "ImagePath";

    /// <summary>Folder of the rows whose label is missing (key 0); never the folder of a class.</summary>
    public const string MissingFolder = "_missing";

    private static byte ToByte(float v) => (byte)Math.Round(Math.Clamp(float.IsNaN(v) ? 0f : v, 0f, 1f) * 255f, MidpointRounding.AwayFromZero);

    internal static string[]? KeyNames(DataViewSchema.Column column)
    {
        if (column.Type is not KeyDataViewType) return null;
        if (column.Annotations.Schema.GetColumnOrNull("KeyValues") is null) return null;
        var names = default(VBuffer<ReadOnlyMemory<char>>);
        column.Annotations.GetValue("KeyValues", ref names);
        return names.DenseValues().Select(n => n.ToString()).ToArray();
    }
}
