using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Runtime;

/// <summary>Turns <see cref="LlmOptions.Device"/> and <see cref="LlmOptions.DType"/> into a TorchSharp device and dtype.</summary>
internal static class DeviceSelection
{
    /// <summary>The device for "auto" / "cpu" / "cuda" / "cuda:N".</summary>
    public static Device ResolveDevice(string? spec)
    {
        var s = (spec ?? "auto").Trim().ToLowerInvariant();
        if (s == "cpu") return CPU;
        if (s == "auto") return CudaAvailable() ? CUDA : CPU;
        if (s == "cuda" || s.StartsWith("cuda:", StringComparison.Ordinal))
        {
            var index = 0;
            if (s.Length > 4 && !int.TryParse(s.AsSpan(5), out index))
                throw new ArgumentException($"Device '{spec}' is not valid: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\".", nameof(LlmOptions.Device));
            if (!CudaAvailable())
                throw new InvalidOperationException(
                    $"Device '{spec}' was requested but CUDA is not available: reference TorchSharp-cuda-linux / TorchSharp-cuda-windows, " +
                    $"or point {TorchRuntime.TorchLibEnvironmentVariable} at a CUDA build of PyTorch's torch/lib.");
            var count = cuda.device_count();
            if (index < 0 || index >= count)
                throw new ArgumentException($"Device '{spec}' does not exist: {count} CUDA device(s) are visible.", nameof(LlmOptions.Device));
            return new Device(DeviceType.CUDA, index);
        }
        throw new ArgumentException($"Device '{spec}' is not valid: use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\".", nameof(LlmOptions.Device));
    }

    /// <summary>The compute dtype for "auto" / "float32" / "float16" / "bfloat16" given the checkpoint's own dtype.</summary>
    public static ScalarType ResolveDType(string? spec, Device device, string? checkpointDType)
    {
        var s = (spec ?? "auto").Trim().ToLowerInvariant();
        return s switch
        {
            "float32" or "fp32" or "float" => ScalarType.Float32,
            "float16" or "fp16" or "half" => ScalarType.Float16,
            "bfloat16" or "bf16" => ScalarType.BFloat16,
            "auto" when device.type != DeviceType.CUDA => ScalarType.Float32,
            "auto" => checkpointDType == "bfloat16" ? ScalarType.BFloat16 : ScalarType.Float16,
            _ => throw new ArgumentException($"DType '{spec}' is not valid: use \"auto\", \"float32\", \"float16\" or \"bfloat16\".", nameof(LlmOptions.DType)),
        };
    }

    private static bool CudaAvailable()
    {
        try { return cuda.is_available(); }
        catch (Exception) { return false; }
    }
}
