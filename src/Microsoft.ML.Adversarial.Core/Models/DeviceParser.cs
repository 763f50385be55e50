using TorchSharp;

namespace Microsoft.ML.Adversarial.Models;

/// <summary>Parses "cpu", "cuda" and "cuda:N" and checks the device exists.</summary>
public static class DeviceParser
{
    /// <summary>The device <paramref name="device"/> names; throws, saying which package or option to use, when it does not exist.</summary>
    /// <param name="device">"cpu", "cuda" or "cuda:N".</param>
    /// <param name="fallbackToCpu">Return the CPU instead of throwing when CUDA is not available.</param>
    public static torch.Device Parse(string device, bool fallbackToCpu = false)
    {
        ArgumentNullException.ThrowIfNull(device);
        string d = device.Trim().ToLowerInvariant();
        if (d == "cpu") return torch.CPU;
        int index = 0;
        if (d != "cuda" && !(d.StartsWith("cuda:") && int.TryParse(d[5..], out index) && index >= 0))
            throw new ArgumentException($"Unknown device '{device}'. Use 'cpu', 'cuda' or 'cuda:N'.", nameof(device));
        bool available = torch.cuda.is_available() && index < torch.cuda.device_count();
        if (available) return new torch.Device(DeviceType.CUDA, index);
        if (fallbackToCpu) return torch.CPU;
        throw new InvalidOperationException(
            $"Device '{device}' was requested but {(torch.cuda.is_available() ? $"only {torch.cuda.device_count()} CUDA device(s) exist" : "CUDA is not available")}. " +
            "Reference TorchSharp-cuda-windows or TorchSharp-cuda-linux in the application (see docs/gpu.md), pick another device, " +
            "or allow the CPU (MLContext.FallbackToCpu = true).");
    }
}
