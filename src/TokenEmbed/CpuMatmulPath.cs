namespace TokenEmbed;

/// <summary>Which kernels run float32 matrix products (the linear layers) on the CPU; see <see cref="LlmOptions.CpuMatmul"/>.</summary>
public enum CpuMatmulPath
{
    /// <summary>
    /// Chosen at the first CPU float32 load: oneDNN where libtorch exposes the switch and a one-off GEMM self-test against a
    /// float64 reference proves it float32-exact (and, except on AMD CPUs with AVX-512, faster than the default); otherwise
    /// <see cref="Default"/>. The choice is logged and shown by <see cref="Llm.Backend"/>.
    /// </summary>
    Auto,

    /// <summary>
    /// libtorch's default float32 GEMM (MKL <c>sgemm</c> in the x86 builds) and libtorch's own attention: none of TokenEmbed's
    /// CPU kernels run (the escape hatch; <see cref="Auto"/> and <see cref="OneDnn"/> use its AVX-512 attention kernel where
    /// the CPU has AVX-512).
    /// </summary>
    Default,

    /// <summary>
    /// oneDNN's brgemm kernels for the linear layers (libtorch's mkldnn float32 matmul switch). On CPUs with AMX-BF16 these
    /// compute in bfloat16, which <see cref="Auto"/> detects and avoids; forcing it there trades accuracy for speed.
    /// </summary>
    OneDnn,
}
