using Microsoft.ML.Adversarial.Models;
using Microsoft.ML.Data;
using Microsoft.ML.Runtime;
using TorchSharp;

namespace Microsoft.ML.Adversarial.MLNet;

/// <summary>
/// ML.NET's environment behind a catalog, and the device it implies. Read through the internal interfaces this
/// assembly compiles against (docs/design.md), not by reflection, and never replaced by a fresh MLContext: the caller's
/// seed, GPU device and CPU fallback must reach the work.
/// </summary>
internal static class MLNetEnvironment
{
    /// <summary>The environment of a catalog (<c>mlContext.Transforms</c>, <c>mlContext.Data</c>, ...).</summary>
    public static IHostEnvironment From(IInternalCatalog catalog) => catalog.Environment;

    /// <summary>The environment of <c>mlContext.MulticlassClassification.Trainers</c>.</summary>
    public static IHostEnvironment From(TrainCatalogBase.CatalogInstantiatorBase trainers) => trainers.Owner.Environment;

    /// <summary>
    /// The device to use: an explicit "cpu", "cuda" or "cuda:N"; else ML.NET's <c>GpuDeviceId</c> (null: CPU).
    /// A CUDA device that does not exist is an error unless <c>FallbackToCpu</c> (or <paramref name="fallbackToCpu"/>) allows the CPU.
    /// </summary>
    public static torch.Device ResolveDevice(string? device, IHostEnvironment env, bool? fallbackToCpu = null)
    {
        var settings = Settings(env);
        string spec = device ?? (settings.GpuDeviceId is int id ? $"cuda:{id}" : "cpu");
        return DeviceParser.Parse(spec, fallbackToCpu ?? settings.FallbackToCpu);
    }

    private static IHostEnvironmentInternal Settings(IHostEnvironment env) => env as IHostEnvironmentInternal
        ?? throw new InvalidOperationException(
            $"The ML.NET environment ({env.GetType().FullName}) does not expose GpuDeviceId and FallbackToCpu; pass the MLContext's own catalogs.");
}
