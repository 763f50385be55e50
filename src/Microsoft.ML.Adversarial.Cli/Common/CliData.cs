using System.CommandLine;
using Microsoft.ML.Adversarial.Data;
using Microsoft.ML.Adversarial.Models;
using TorchSharp;

namespace Microsoft.ML.Adversarial.Cli.Common;

/// <summary>What the commands read: data splits (stratified, classes matched to the model by name) and model files.</summary>
internal static class CliData
{
    /// <summary>Loads one split: Fashion-MNIST (stratified subset) or an image folder's train/ or test/ folder.</summary>
    public static ImageSet LoadSplit(ParseResult p, bool train, int? count)
    {
        string? folder = p.GetValue(CommonOptions.Data);
        if (folder is null)
        {
            try
            {
                return FashionMnist.Load(new FashionMnistOptions
                {
                    Folder = FashionMnist.ResolveDefaultFolder(),
                    Split = train ? FashionMnistSplit.Train : FashionMnistSplit.Test, Count = count, Subset = SubsetMode.Stratified,
                });
            }
            catch (Exception e) when (e is DirectoryNotFoundException or FileNotFoundException)
            {
                throw new CliException(e.Message + (Environment.GetEnvironmentVariable(FashionMnist.FolderVariable) is { Length: > 0 } env
                    ? $" {FashionMnist.FolderVariable} is set to '{env}': point it at the folder with the four IDX files, unset it, or pass --data FOLDER."
                    : " Install it (bash build/setup.sh, or apt-get install dataset-fashion-mnist) or pass --data FOLDER."));
            }
        }
        string split = Path.Combine(folder, train ? "train" : "test");
        if (!Directory.Exists(split))
            throw new CliException($"'{split}' does not exist. --data expects a folder with train/ and test/ subfolders, each holding one folder per class.");
        ShowWarnings(split);
        int size = p.GetValue(CommonOptions.ImageSize);
        var ml = new MLContext(seed: p.GetValue(CommonOptions.Seed));
        var view = ml.Data.LoadFromImageFolder(new ImageFolderOptions { Folder = split, Height = size, Width = size, Grayscale = p.GetValue(CommonOptions.Grayscale) });
        return ImageSetReader.Read(view).Stratified(count);
    }

    /// <summary>
    /// The training split as <c>train</c> reads it: an image folder's train/ folder decoded batch by batch while training
    /// (<see cref="ImageFolderSource"/>: nothing is decoded before the first step, memory does not grow with the folder);
    /// Fashion-MNIST in memory (<see cref="LoadSplit"/>). Same stratified subset either way.
    /// </summary>
    public static IImageSource OpenTrainSplit(ParseResult p, int? count)
    {
        if (p.GetValue(CommonOptions.Data) is not { } folder) return LoadSplit(p, train: true, count);
        try { return OpenFolderSplit(p, folder, train: true).Stratified(count); }
        catch (InvalidDataException e) { throw new CliException(e.Message); }
    }

    /// <summary>An image folder's train/ or test/ folder, listed (nothing decoded), with the --image-size/--grayscale/--seed of the command.</summary>
    private static ImageFolderSource OpenFolderSplit(ParseResult p, string folder, bool train)
    {
        string split = Path.Combine(folder, train ? "train" : "test");
        if (!Directory.Exists(split))
            throw new CliException($"'{split}' does not exist. --data expects a folder with train/ and test/ subfolders, each holding one folder per class.");
        ShowWarnings(split);
        int size = p.GetValue(CommonOptions.ImageSize);
        return ImageFolderSource.Open(new ImageFolderOptions { Folder = split, Height = size, Width = size, Grayscale = p.GetValue(CommonOptions.Grayscale) },
            new MLContext(seed: p.GetValue(CommonOptions.Seed)));
    }

    /// <summary>What the image-folder readers leave out of a split or take twice (<see cref="ImageFolder.Warnings"/>), one line each.</summary>
    private static void ShowWarnings(string split)
    {
        foreach (var w in ImageFolder.Warnings(split)) Spectre.Console.AnsiConsole.MarkupLine($"[yellow]WARNING:[/] {Spectre.Console.Markup.Escape(w)}");
    }

    /// <summary>
    /// Loads a split for a model: the images must have the model's shape, and their classes are renumbered to the
    /// model's by name (<see cref="ClassMatch"/>), so a folder's order never decides what a label means.
    /// </summary>
    public static ImageSet LoadSplitFor(ParseResult p, bool train, int? count, ModelDescription model, string modelName)
        => (ImageSet)MatchModel(LoadSplit(p, train, count), model, modelName);

    /// <summary>
    /// A split for a model as <c>evaluate</c>, <c>transfer</c> and <c>attack</c> read it: an image folder's train/ or test/
    /// folder decoded batch by batch (<see cref="ImageFolderSource"/>: only the file list is held, each file is checked when
    /// its batch is read and a bad one is named), Fashion-MNIST in memory (<see cref="LoadSplit"/>). The same stratified
    /// rows, shape check and classes matched by name as <see cref="LoadSplitFor"/>.
    /// </summary>
    public static IImageSource OpenSplitFor(ParseResult p, bool train, int? count, ModelDescription model, string modelName)
    {
        if (p.GetValue(CommonOptions.Data) is not { } folder) return LoadSplitFor(p, train, count, model, modelName);
        // A folder that cannot be listed throws as the in-memory reader did (same message, same exit code).
        return MatchModel(OpenFolderSplit(p, folder, train).Stratified(count), model, modelName);
    }

    /// <summary>The checks and class renumbering of <see cref="LoadSplitFor"/> and <see cref="OpenSplitFor"/>: shape, then classes by name.</summary>
    private static IImageSource MatchModel(IImageSource data, ModelDescription model, string modelName)
    {
        if (data.ImageShape != (model.Channels, model.Height, model.Width))
            throw new CliException($"The data has {data.ImageShape} images; model '{modelName}' takes ({model.Channels}, {model.Height}, {model.Width}). Use --image-size/--grayscale to match.");
        if (model.ClassNames is not { } classes)
        {
            // Without names the model's output k is the data's class k, so the counts must agree.
            if (data.ClassNames.Count != model.Classes)
                throw new CliException($"The data has {data.ClassNames.Count} classes ({ClassMatch.Show(data.ClassNames.ToList())}); model '{modelName}' scores {model.Classes} and names none. " +
                    "Use data with its classes, or name the model's outputs (--onnx-classes for an .onnx model).");
            return data;
        }
        try { return data.AlignTo(classes, "the data", $"model '{modelName}'"); }
        catch (ArgumentException e) { throw new CliException(e.Message); }
    }

    /// <summary>A model file of the commands that also take ONNX files (as black boxes, <see cref="OnnxModels"/>).</summary>
    public static (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) LoadModel(string path, torch.Device device, ParseResult p)
    {
        if (!OnnxModels.IsOnnx(path)) return LoadModel(path, device);
        return FedUnitPixels(OnnxModels.Load(path, p));
    }

    public static (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) LoadModel(string path, torch.Device device)
    {
        if (OnnxModels.IsOnnx(path))
            throw new CliException($"'{path}' is an ONNX model: evaluate (methods square, autoattack) and transfer (as a target) take ONNX models; this command needs a model file (.advml) it can differentiate.");
        (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) loaded;
        try { loaded = ModelIO.Load(path, device); }
        catch (Exception e) when (e is FileNotFoundException or InvalidDataException)
        {
            throw new CliException(e.Message);
        }
        return FedUnitPixels(loaded);
    }

    /// <summary>
    /// The CLI's readers give pixels in [0, 1]; a model on another range (an imported ImageNet network, an ONNX model with
    /// --onnx-range) is fed through PixelRangeAdapter, which maps [0, 1] to its range per channel, so attacks on [0, 1] are its own attacks.
    /// </summary>
    private static (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) FedUnitPixels(
        (torch.nn.Module<torch.Tensor, torch.Tensor> Model, ModelDescription Description) loaded)
        => loaded.Description.InputRangeOrDefault.Description != InputRange.UnitInterval.Description
            ? (new PixelRangeAdapter(loaded.Model, loaded.Description.InputRangeOrDefault), loaded.Description with { InputRange = InputRange.UnitInterval })
            : loaded;
}
