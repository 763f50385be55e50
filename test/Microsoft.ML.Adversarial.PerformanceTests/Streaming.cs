using System.Diagnostics;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Adversarial.Training;
using TorchSharp;

namespace Microsoft.ML.Adversarial.PerformanceTests;

/// <summary>
/// Issue 17 measurements (a harness, not timed tests): image folders of N Fashion-MNIST variants, and one training run
/// on one, in memory (ImageFolder.Load + ImageSetReader, as before) or streamed (ImageFolderSource + BatchPrefetcher),
/// reporting time to the first step, steps/s after it and the process's peak resident memory. Run each in its own process.
/// </summary>
internal static class Streaming
{
    /// <summary>Writes <paramref name="count"/> 28x28 PNGs under <c>output/train/&lt;class&gt;/</c>: Fashion-MNIST's training images, flipped and shifted.</summary>
    public static int MakeFolder(int count, string output)
    {
        var fm = FashionMnist.Load(new FashionMnistOptions { Folder = FashionMnist.ResolveDefaultFolder() });
        var pixels = new byte[(long)count * 784];
        var labels = new uint[count];
        var image = new float[784];
        for (int i = 0; i < count; i++)
        {
            int src = i % fm.RowCount, variant = i / fm.RowCount; // variant 0: the original; then flips and shifts
            fm.CopyPixels(src, image);
            bool flip = variant % 2 == 1;
            int dx = (variant / 2) % 5 - 2, dy = (variant / 10) % 5 - 2;
            for (int y = 0; y < 28; y++)
                for (int x = 0; x < 28; x++)
                {
                    int sx = (flip ? 27 - x : x) - dx, sy = y - dy;
                    pixels[(long)i * 784 + y * 28 + x] = sx is >= 0 and < 28 && sy is >= 0 and < 28 ? (byte)Math.Round(image[sy * 28 + sx] * 255) : (byte)0;
                }
            labels[i] = fm.GetLabel(src);
        }
        var set = ImageSet.FromBytes(pixels, labels, fm.ClassNames, (1, 28, 28));
        var watch = Stopwatch.StartNew();
        int written = ImageFolder.Save(new ImageSetDataView(set), Path.Combine(output, "train"));
        Console.WriteLine($"{written} PNGs in {Path.Combine(output, "train")} ({watch.Elapsed.TotalSeconds:F0} s)");
        return 0;
    }

    /// <summary>One training run (SmallCnn rho 0.25, m 32, k 16 step-ll) of <paramref name="steps"/> steps; prints one line of figures.</summary>
    public static int Train(string folder, bool stream, int steps, int workers, int threads)
    {
        torch.set_num_threads(threads);
        var process = Process.GetCurrentProcess();
        var watch = Stopwatch.StartNew();
        var options = new ImageFolderOptions { Folder = Path.Combine(folder, "train"), Height = 28, Width = 28, Grayscale = true };
        IImageSource data = stream ? ImageFolderSource.Open(options) : ImageSetReader.Read(ImageFolder.Load(new MLContext(1), options));
        double loaded = watch.Elapsed.TotalSeconds;
        double firstStep = double.NaN;
        var training = new AdversarialTrainingOptions
        {
            BatchSize = 32, AdversarialPerBatch = 16, MaxSteps = steps, ProgressEvery = 1, Prefetch = new PrefetchOptions { Workers = workers, Depth = 4 },
        };
        var progress = new SyncProgress(p => { if (p.Step == 1) firstStep = watch.Elapsed.TotalSeconds; });
        var trainer = new AdversarialTrainer(training);
        var model = trainer.TrainNew(new ModelSpec(ModelArchitecture.SmallCnn, 0.25), data, progress: progress);
        double total = watch.Elapsed.TotalSeconds;
        process.Refresh();
        Console.WriteLine($"{(stream ? "stream" : "memory")}: {data.RowCount} images, opened/loaded in {loaded:F1} s, first step done at {firstStep:F1} s, " +
            $"{(steps - 1) / (total - firstStep):F1} steps/s after it, peak RSS {process.PeakWorkingSet64 / 1048576.0:F0} MiB, workers {workers}, torch threads {threads}");
        // Where memory is: the managed heap (file list, labels, epoch order, GC slack) against the rest (libtorch, native decoders).
        var gc = GC.GetGCMemoryInfo();
        Console.WriteLine($"managed heap {gc.HeapSizeBytes / 1048576.0:F1} MiB (committed {gc.TotalCommittedBytes / 1048576.0:F1} MiB), " +
            $"after a full collection {GC.GetTotalMemory(forceFullCollection: true) / 1048576.0:F1} MiB live");
        model.Model.Dispose();
        return 0;
    }

    /// <summary>Writes <paramref name="count"/> RGB JPEGs of <paramref name="size"/>^2 (Fashion-MNIST upscaled, tinted) under <c>output/train/&lt;class&gt;/</c>.</summary>
    public static int MakeJpegs(int count, int size, string output)
    {
        var fm = FashionMnist.Load(new FashionMnistOptions { Folder = FashionMnist.ResolveDefaultFolder(), Count = count, Subset = SubsetMode.Stratified });
        var image = new float[784];
        for (int i = 0; i < fm.RowCount; i++)
        {
            fm.CopyPixels(i, image);
            using var bitmap = new SkiaSharp.SKBitmap(new SkiaSharp.SKImageInfo(size, size, SkiaSharp.SKColorType.Rgba8888, SkiaSharp.SKAlphaType.Opaque));
            for (int y = 0; y < size; y++)
                for (int x = 0; x < size; x++)
                {
                    byte g = (byte)Math.Round(image[y * 28 / size * 28 + x * 28 / size] * 255);
                    bitmap.SetPixel(x, y, new SkiaSharp.SKColor(g, (byte)(g * 0.85), (byte)(g * 0.7)));
                }
            string dir = Path.Combine(output, "train", ClassMatch.FolderName(fm.ClassNames[(int)fm.GetLabel(i)]));
            Directory.CreateDirectory(dir);
            using var encoded = SkiaSharp.SKImage.FromBitmap(bitmap).Encode(SkiaSharp.SKEncodedImageFormat.Jpeg, 90);
            File.WriteAllBytes(Path.Combine(dir, $"{i:D6}.jpg"), encoded.ToArray());
        }
        Console.WriteLine($"{fm.RowCount} JPEGs of {size}x{size} in {Path.Combine(output, "train")}");
        return 0;
    }

    /// <summary>Decode throughput: every image of the folder read once in batches of 32 through <see cref="BatchPrefetcher"/>, no model.</summary>
    public static int Decode(string folder, int size, int workers)
    {
        var source = ImageFolderSource.Open(new ImageFolderOptions { Folder = Path.Combine(folder, "train"), Height = size, Width = size });
        const int batch = 32;
        long batches = source.RowCount / batch;
        var order = EpochOrder.For(1, 0, source.RowCount);
        using var reader = new BatchPrefetcher(source, 0, batches, i => order.AsSpan((int)(i * batch), batch).ToArray(), new PrefetchOptions { Workers = workers, Depth = 4 });
        var watch = Stopwatch.StartNew();
        for (long i = 0; i < batches; i++)
        {
            using var scope = torch.NewDisposeScope();
            reader.Take(i);
        }
        double seconds = watch.Elapsed.TotalSeconds;
        Console.WriteLine($"decode {size}x{size} JPEG: {batches * batch} images in {seconds:F1} s = {batches * batch / seconds:F1} images/s with {workers} worker(s) " +
            $"({batches * batch / seconds / Math.Max(1, workers):F1} per worker)");
        return 0;
    }

    private sealed class SyncProgress(Action<TrainingProgress> report) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => report(value);
    }
}
