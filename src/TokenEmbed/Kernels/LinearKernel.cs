using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Kernels;

/// <summary>What <see cref="LinearKernel"/> applies to a product in registers before storing it.</summary>
internal enum KernelActivation
{
    /// <summary>Nothing.</summary>
    None,

    /// <summary>The exact (erf) GELU (<see cref="VectorMath.Gelu"/>).</summary>
    Gelu,
}

/// <summary>
/// A linear layer <c>y = LayerNorm(act(x·Wᵀ + bias + residual))</c> on the CPU in float32 with AVX-512, every part but the
/// product optional: the bias, the residual and the activation are applied to the accumulators before they are stored, and
/// the LayerNorm to each block of rows while it is still in cache, so the [tokens, N] output is written once where
/// libtorch's path writes and reads it again for each of them (MiniLM's bias adds, GELU, residual adds and LayerNorms).
/// </summary>
/// <remarks>
/// <para>
/// The weight is read in the layout <see cref="Models.Layers.Dense.StoreTransposed"/> keeps ([in, out] contiguous) with no
/// packing: eight rows × 32 columns a register tile (16 accumulators, the input rows broadcast, two weight vectors a step),
/// the sum over the input axis in order.
/// </para>
/// <para>
/// Up to <see cref="MaxRows"/> rows (a short query) the product is bound by streaming the weights: its 32-column strips are
/// split over two cores by <see cref="SpinPool"/> within a small batch. Above, rows go in blocks of about 96 (an input block
/// stays in L2 while every strip of the weight passes over it, and each strip stays in cache over the block's tiles), the
/// blocks shared by libtorch's thread count (<see cref="KernelThreads"/>). MiniLM's 24 products at 32 × 128 tokens:
/// 335–385 GFLOP/s on two Zen 5 cores (peak 430) where oneDNN's brgemm reached 300–330 in the same runs.
/// </para>
/// </remarks>
internal static unsafe class LinearKernel
{
    /// <summary>The most rows the few-row schedule takes (split by columns; more rows are split by row blocks).</summary>
    public const int MaxRows = 32;

    /// <summary>The longest input axis the kernel takes (beyond it a weight strip no longer stays in cache: oneDNN runs it).</summary>
    public const int MaxDepth = 4096;

    private const int Lanes = 16;
    private const int Strip = 2 * Lanes;
    private const int Rows = 8;

    /// <summary>
    /// Whether the kernel takes the product: CPU float32 <paramref name="x"/> [..., K] contiguous with K ≤ <see cref="MaxDepth"/>,
    /// <paramref name="weight"/> [N, K] stored [in, out] contiguous (stride (1, N)) with N a multiple of 32, an optional
    /// contiguous bias [N].
    /// </summary>
    public static bool Supports(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!AttentionKernel.IsAvailable) return false;
        if (x.dim() < 2 || weight.dim() != 2 || x.device_type != DeviceType.CPU || weight.device_type != DeviceType.CPU) return false;
        if (x.dtype != ScalarType.Float32 || weight.dtype != ScalarType.Float32) return false;
        long n = weight.shape[0], k = weight.shape[1], rows = x.numel() / Math.Max(1, k);
        if (x.shape[^1] != k || k > MaxDepth || rows == 0 || n % Strip != 0 || weight.stride(0) != 1 || weight.stride(1) != n || !x.is_contiguous())
            return false;
        return bias is null || Fits(bias, n);
    }

    /// <summary>Whether <paramref name="residual"/> can be added to the product of <paramref name="x"/> with an N-column weight.</summary>
    public static bool SupportsResidual(Tensor residual, Tensor x, long n) =>
        residual.device_type == DeviceType.CPU && residual.dtype == ScalarType.Float32 && residual.is_contiguous()
        && residual.dim() >= 1 && residual.shape[^1] == n && residual.numel() == x.numel() / x.shape[^1] * n;

    /// <summary>Whether a LayerNorm with <paramref name="gamma"/> (and <paramref name="beta"/>, or none) over N columns can be fused.</summary>
    public static bool SupportsNorm(Tensor gamma, Tensor? beta, long n) => Fits(gamma, n) && (beta is null || Fits(beta, n));

    private static bool Fits(Tensor v, long n) =>
        v.dim() == 1 && v.shape[0] == n && v.dtype == ScalarType.Float32 && v.device_type == DeviceType.CPU && v.is_contiguous();

    /// <summary>
    /// <c>LayerNorm(act(x·Wᵀ + bias + residual))</c> over the last axis of <paramref name="x"/> ([..., K] → [..., N], no reshapes)
    /// for operands <see cref="Supports"/>, <see cref="SupportsResidual"/> and <see cref="SupportsNorm"/> accepted.
    /// </summary>
    /// <param name="x">The input [..., K].</param>
    /// <param name="weight">The weight [N, K], stored [in, out].</param>
    /// <param name="bias">The bias [N], or null.</param>
    /// <param name="residual">A tensor of the output's size added to the product, or null.</param>
    /// <param name="activation">The activation applied after the bias and residual.</param>
    /// <param name="gamma">The LayerNorm weight [N] applied last, or null for none.</param>
    /// <param name="beta">The LayerNorm bias [N], or null.</param>
    /// <param name="eps">The LayerNorm epsilon.</param>
    public static Tensor Run(Tensor x, Tensor weight, Tensor? bias, Tensor? residual = null, KernelActivation activation = KernelActivation.None,
        Tensor? gamma = null, Tensor? beta = null, double eps = 1e-5)
    {
        long k = x.shape[^1], m = x.numel() / k, n = weight.shape[0];
        var shape = x.shape;
        shape[^1] = n;
        var y = empty(shape, ScalarType.Float32);
        var job = new Job
        {
            X = TensorMemory.Float32(x), W = TensorMemory.Float32(weight), Y = TensorMemory.Float32(y),
            Bias = bias is null ? null : TensorMemory.Float32(bias), Residual = residual is null ? null : TensorMemory.Float32(residual),
            Gamma = gamma is null ? null : TensorMemory.Float32(gamma), Beta = beta is null ? null : TensorMemory.Float32(beta),
            Eps = (float)eps, Gelu = activation == KernelActivation.Gelu, M = m, K = k, N = n,
        };
        var strips = n / Strip;
        if (m <= MaxRows)
        {
            // A few rows: the strips over two cores (within a small batch's SpinPool scope), then the rows normalised.
            KernelThreads.For(strips, shares: false, (from, to) => job.Columns(0, m, from, to), threadPool: false);
            if (job.Gamma != null) job.Normalize(0, m);
        }
        else
        {
            // Many rows: blocks of rows, each through every strip and then normalised while in cache.
            var block = BlockRows(k);
            KernelThreads.For((m + block - 1) / block, shares: false, (from, to) =>
            {
                for (var b = from; b < to; b++)
                {
                    long r0 = b * block, r1 = Math.Min(m, r0 + block);
                    job.Columns(r0, r1, 0, strips);
                    if (job.Gamma != null) job.Normalize(r0, r1);
                }
            });
        }
        GC.KeepAlive(x);
        GC.KeepAlive(weight);
        GC.KeepAlive(bias);
        GC.KeepAlive(residual);
        GC.KeepAlive(gamma);
        GC.KeepAlive(beta);
        return y;
    }

    /// <summary>Rows a block: 96 up to K = 1536 (an input block of at most 590 KB, within a Zen 5 or recent Intel L2), fewer beyond.</summary>
    private static long BlockRows(long k) => Math.Max(2 * Rows, Math.Min(96, 96 * 1536 / k / Rows * Rows));

    /// <summary>One product's operands (addresses and sizes).</summary>
    private sealed class Job
    {
        public float* X, W, Y, Bias, Residual, Gamma, Beta;
        public float Eps;
        public bool Gelu;
        public long M, K, N;

        /// <summary>Rows [r0, r1) × strips [s0, s1).</summary>
        public void Columns(long r0, long r1, long s0, long s1)
        {
            for (var s = s0; s < s1; s++)
                for (var r = r0; r < r1; r += Rows) Tile(r, r1, s * Strip);
        }

        /// <summary>LayerNorm of rows [r0, r1) in place.</summary>
        public void Normalize(long r0, long r1)
        {
            for (var r = r0; r < r1; r++) VectorMath.LayerNormRow(Y + r * N, N, Gamma, Beta, Eps);
        }

        /// <summary>Rows [r, r + 8) of those below <paramref name="end"/> (a short last tile repeats its last row; only real rows are stored) × columns [c, c + 32).</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private void Tile(long r, long end, long c)
        {
            long k = K, n = N, last = end - 1;
            float* x = X, x0 = x + r * k, x1 = x + Math.Min(r + 1, last) * k, x2 = x + Math.Min(r + 2, last) * k, x3 = x + Math.Min(r + 3, last) * k;
            float* x4 = x + Math.Min(r + 4, last) * k, x5 = x + Math.Min(r + 5, last) * k, x6 = x + Math.Min(r + 6, last) * k, x7 = x + Math.Min(r + 7, last) * k;
            var b0 = Bias is null ? Vector512<float>.Zero : Vector512.Load(Bias + c);
            var b1 = Bias is null ? Vector512<float>.Zero : Vector512.Load(Bias + c + Lanes);
            Vector512<float> a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1;
            Vector512<float> a40 = b0, a41 = b1, a50 = b0, a51 = b1, a60 = b0, a61 = b1, a70 = b0, a71 = b1;
            var wk = W + c;
            for (long i = 0; i < k; i++, wk += n)
            {
                var w0 = Vector512.Load(wk);
                var w1 = Vector512.Load(wk + Lanes);
                Step(x0[i], w0, w1, ref a00, ref a01);
                Step(x1[i], w0, w1, ref a10, ref a11);
                Step(x2[i], w0, w1, ref a20, ref a21);
                Step(x3[i], w0, w1, ref a30, ref a31);
                Step(x4[i], w0, w1, ref a40, ref a41);
                Step(x5[i], w0, w1, ref a50, ref a51);
                Step(x6[i], w0, w1, ref a60, ref a61);
                Step(x7[i], w0, w1, ref a70, ref a71);
            }
            var rows = (int)Math.Min(Rows, end - r);
            var at = r * n + c;
            StoreRow(at, 0, rows, a00, a01);
            StoreRow(at + n, 1, rows, a10, a11);
            StoreRow(at + 2 * n, 2, rows, a20, a21);
            StoreRow(at + 3 * n, 3, rows, a30, a31);
            StoreRow(at + 4 * n, 4, rows, a40, a41);
            StoreRow(at + 5 * n, 5, rows, a50, a51);
            StoreRow(at + 6 * n, 6, rows, a60, a61);
            StoreRow(at + 7 * n, 7, rows, a70, a71);
        }

        /// <summary>One tile row's step: <c>a0 += x·w0</c>, <c>a1 += x·w1</c> (inlined; the accumulators stay in registers).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Step(float x, Vector512<float> w0, Vector512<float> w1, ref Vector512<float> a0, ref Vector512<float> a1)
        {
            var v = Vector512.Create(x);
            a0 = Avx512F.FusedMultiplyAdd(v, w0, a0);
            a1 = Avx512F.FusedMultiplyAdd(v, w1, a1);
        }

        /// <summary>A tile row's 32 sums at element offset <paramref name="at"/>, with the residual and activation applied.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private void StoreRow(long at, int row, int rows, Vector512<float> left, Vector512<float> right)
        {
            if (row >= rows) return;
            if (Residual != null)
            {
                left += Vector512.Load(Residual + at);
                right += Vector512.Load(Residual + at + Lanes);
            }
            if (Gelu)
            {
                left = VectorMath.Gelu(left);
                right = VectorMath.Gelu(right);
            }
            left.Store(Y + at);
            right.Store(Y + at + Lanes);
        }
    }
}
