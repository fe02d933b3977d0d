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
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias) => Linear(x, weight, bias, default);

    /// <summary>
    /// <c>norm(act(x·Wᵀ + b + residual))</c> over the last axis of <paramref name="x"/>, each part of
    /// <paramref name="epilogue"/> optional: fused into <see cref="Kernels.LinearKernel"/> where this thread's forward runs
    /// TokenEmbed's kernels and it takes them, else applied after the product in place (the norm into a new tensor).
    /// </summary>
    public static Tensor Linear(Tensor x, Tensor weight, Tensor? bias, Epilogue epilogue)
    {
        if (UseKernel(x, weight, bias, epilogue.Residual)) return Fused(x, weight, bias, epilogue);
        Tensor y;
        if (t_oneDnn && x.dtype == ScalarType.Float32 && x.device_type == DeviceType.CPU)
        {
            using var fast = OneDnnMatmul.Enter();
            y = Product(x, weight, bias);
        }
        else y = Product(x, weight, bias);
        return Finish(y, epilogue, residualAdded: false, activated: false);
    }

    /// <summary>
    /// Whether the product runs on TokenEmbed's kernel: a few rows (a short query: over both cores, where oneDNN streams the
    /// weights on one) wherever the kernels run; more rows where oneDNN replaced MKL and the forward runs on
    /// <see cref="Kernels.SpinPool"/>'s threads (<see cref="Models.IBackbone.RunsOnKernels"/>: measured faster than oneDNN's
    /// brgemm there, with the epilogue fused; on thread-pool workers, which take ~0.8 ms to join each product, it was not).
    /// </summary>
    private static bool UseKernel(Tensor x, Tensor weight, Tensor? bias, Tensor? residual)
    {
        if (!t_kernels || !Kernels.LinearKernel.Supports(x, weight, bias)) return false;
        if (x.numel() / x.shape[^1] > Kernels.LinearKernel.MaxRows && !(t_oneDnn && Kernels.SpinPool.IsActive)) return false;
        return residual is null || Kernels.LinearKernel.SupportsResidual(residual, x, weight.shape[0]);
    }

    private static Tensor Fused(Tensor x, Tensor weight, Tensor? bias, Epilogue epilogue)
    {
        var n = weight.shape[0];
        var act = epilogue.Activation?.Kernel ?? Kernels.KernelActivation.None;
        var activated = epilogue.Activation is null || act != Kernels.KernelActivation.None;
        var norm = epilogue.Norm;
        var fuseNorm = norm is not null && activated && norm.elementwise_affine && norm.normalized_shape is [var size] && size == n
                       && Kernels.LinearKernel.SupportsNorm(norm.weight!, norm.bias, n);
        var y = Kernels.LinearKernel.Run(x, weight, bias, epilogue.Residual, act,
            fuseNorm ? norm!.weight : null, fuseNorm ? norm!.bias : null, norm?.eps ?? 0);
        return Finish(y, fuseNorm ? epilogue with { Norm = null } : epilogue, residualAdded: true, activated);
    }

    /// <summary>The parts of <paramref name="epilogue"/> not yet applied to the fresh product <paramref name="y"/> (consumed).</summary>
    private static Tensor Finish(Tensor y, Epilogue epilogue, bool residualAdded, bool activated)
    {
        if (!residualAdded && epilogue.Residual is not null) Ops.AddInPlace(y, epilogue.Residual);
        if (!activated && epilogue.Activation is not null) y = epilogue.Activation.InPlace(y);
        if (epilogue.Norm is null) return y;
        using (y) return epilogue.Norm.forward(y);
    }

    private static Tensor Product(Tensor x, Tensor weight, Tensor? bias)
    {
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

/// <summary>
/// What a linear layer applies to its product, in this order: a residual added (a tensor of the output's size), an activation,
/// a LayerNorm over the output axis (<see cref="Gemm.Linear(Tensor, Tensor, Tensor?, Epilogue)"/>).
/// </summary>
/// <param name="Residual">Added to the product, or null.</param>
/// <param name="Activation">Applied after the residual, or null.</param>
/// <param name="Norm">Applied last, or null.</param>
internal readonly record struct Epilogue(Tensor? Residual = null, Activation? Activation = null, TorchSharp.Modules.LayerNorm? Norm = null);
