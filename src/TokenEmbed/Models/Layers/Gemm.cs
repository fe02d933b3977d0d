using TokenEmbed.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// The linear layers' product <c>y = x·Wᵀ + b</c> as one 2-D <c>addmm</c> (the bias fused into the GEMM, where TorchSharp's
/// <c>functional.linear</c> on 3-D input runs <c>matmul</c> then a separate add), on the CPU matmul path the running model
/// chose (<see cref="MatmulPath"/>): the engine opens <see cref="Use(MatmulPath)"/> around each forward on its thread.
/// </summary>
internal static class Gemm
{
    [ThreadStatic]
    private static bool t_oneDnn;

    [ThreadStatic]
    private static bool t_kernels;

    /// <summary>
    /// Until disposed, float32 CPU linears on this thread run on oneDNN when <paramref name="oneDnn"/> is set, and attention on
    /// <see cref="Kernels.AttentionKernel"/> when <paramref name="kernels"/> is.
    /// </summary>
    public static Restore Use(bool oneDnn, bool kernels = false)
    {
        var previous = new Restore(t_oneDnn, t_kernels);
        t_oneDnn = oneDnn;
        t_kernels = kernels;
        return previous;
    }

    /// <summary>Until disposed, this thread's forwards run on <paramref name="path"/>.</summary>
    public static Restore Use(MatmulPath path) => Use(path.UseOneDnn, path.UseKernels);

    /// <summary>Whether this thread's forward runs its float32 CPU products on oneDNN.</summary>
    public static bool OneDnnActive => t_oneDnn;

    /// <summary>Whether this thread's forward runs TokenEmbed's CPU kernels where they apply.</summary>
    public static bool KernelsActive => t_kernels;

    /// <summary><c>x·Wᵀ + b</c> over the last axis of <paramref name="x"/> (any leading shape).</summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias)
    {
        if (t_oneDnn && x.dtype == ScalarType.Float32 && x.device_type == DeviceType.CPU)
        {
            using var fast = OneDnnMatmul.Enter();
            return Product(x, weight, bias);
        }
        return Product(x, weight, bias);
    }

    private static Tensor Product(Tensor x, Tensor weight, Tensor? bias)
    {
        // A few rows (a short query): TokenEmbed's kernel over both cores, where oneDNN streams the weights on one.
        if (t_kernels && Kernels.SmallGemm.Supports(x, weight, bias))
            return Kernels.SmallGemm.Run(x, weight, bias, split: Kernels.SpinPool.IsActive);
        if (x.dim() == 2) return Product2D(x, weight, bias);
        var shape = x.shape;
        using var flat = x.reshape(-1, shape[^1]);
        using var y = Product2D(flat, weight, bias);
        shape[^1] = weight.shape[0];
        return y.view(shape);
    }

    private static Tensor Product2D(Tensor x, Tensor weight, Tensor? bias)
    {
        using var wt = weight.t();
        return bias is null ? x.mm(wt) : bias.addmm(x, wt, 1f, 1f);
    }

    /// <summary>Ends a <see cref="Use(bool, bool)"/>.</summary>
    public readonly struct Restore(bool oneDnn, bool kernels) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose()
        {
            t_oneDnn = oneDnn;
            t_kernels = kernels;
        }
    }
}
