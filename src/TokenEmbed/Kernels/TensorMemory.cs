using TokenEmbed.Runtime;
using static TorchSharp.torch;

namespace TokenEmbed.Kernels;

/// <summary>
/// The address of a CPU tensor's first element (its storage offset applied), for kernels that read and write tensors in
/// place: TorchSharp 0.107 hands out a span only for contiguous tensors, and the kernels take strided views (the Q, K and V
/// slices of a fused projection) without copying them. The entry point is LibTorchSharp's own <c>THSTensor_data</c>
/// (<c>at::Tensor::data_ptr</c>), resolved in the library copy this process loaded.
/// </summary>
internal static unsafe class TensorMemory
{
    private static readonly IntPtr Data = TorchRuntime.FindExport("THSTensor_data");

    /// <summary>Whether the entry point was found (else the kernels are not used).</summary>
    public static bool IsAvailable => Data != IntPtr.Zero;

    /// <summary>The address of element 0 of <paramref name="t"/> (a CPU tensor; no copy is made, nothing is checked here).</summary>
    public static float* Float32(Tensor t)
    {
        if (Data == IntPtr.Zero) throw new PlatformNotSupportedException("LibTorchSharp's THSTensor_data entry point was not found.");
        return (float*)((delegate* unmanaged<IntPtr, IntPtr>)Data)(t.Handle);
    }
}
