using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Kernels;

/// <summary>
/// A linear layer's product <c>y = bias + x·Wᵀ</c> for a few rows (a short query: up to <see cref="MaxRows"/> tokens) on the
/// CPU in float32 with AVX-512, its column strips split over two cores by <see cref="SpinPool"/> within a small batch. At 16 rows the product
/// streams the weights from memory once and is bound by one core's share of the memory bandwidth (MiniLM's 24 products:
/// 3.2 ms on oneDNN's single-threaded brgemm, 4.3 ms on two OpenMP threads); two cores stream twice as much. The weight is
/// read in the layout <see cref="Models.Layers.Dense.StoreTransposed"/> keeps ([in, out] contiguous), eight rows × 32 columns
/// a register tile, the bias loaded into the accumulators, the sum over the input axis in order.
/// </summary>
internal static unsafe class SmallGemm
{
    /// <summary>The most rows the kernel takes (larger products go to oneDNN or MKL).</summary>
    public const int MaxRows = 32;

    private const int Lanes = 16;
    private const int Strip = 2 * Lanes;
    private const int Rows = 8;

    /// <summary>
    /// Whether the kernel takes the product: CPU float32 <paramref name="x"/> [..., K] contiguous with at most 32 rows, <paramref name="weight"/>
    /// [N, K] stored [in, out] contiguous (stride (1, N)) with N a multiple of 32, an optional contiguous bias [N].
    /// </summary>
    public static bool Supports(Tensor x, Tensor weight, Tensor? bias)
    {
        if (!AttentionKernel.IsAvailable) return false;
        if (x.dim() < 2 || weight.dim() != 2 || x.device_type != DeviceType.CPU || weight.device_type != DeviceType.CPU) return false;
        if (x.dtype != ScalarType.Float32 || weight.dtype != ScalarType.Float32) return false;
        long n = weight.shape[0], k = weight.shape[1], rows = x.numel() / Math.Max(1, k);
        if (x.shape[^1] != k || rows > MaxRows || rows == 0 || n % Strip != 0 || weight.stride(0) != 1 || weight.stride(1) != n || !x.is_contiguous())
            return false;
        return bias is null || (bias.dim() == 1 && bias.shape[0] == n && bias.dtype == ScalarType.Float32 && bias.is_contiguous());
    }

    /// <summary>
    /// <c>bias + x·Wᵀ</c> over the last axis of <paramref name="x"/> ([..., K] → [..., N], no reshapes) for operands
    /// <see cref="Supports"/> accepted.
    /// </summary>
    /// <param name="x">The input [..., K].</param>
    /// <param name="weight">The weight [N, K], stored [in, out].</param>
    /// <param name="bias">The bias [N], or null.</param>
    /// <param name="split">Whether to share the columns with <see cref="SpinPool"/>'s helper (within its scope).</param>
    public static Tensor Run(Tensor x, Tensor weight, Tensor? bias, bool split)
    {
        long k = x.shape[^1], m = x.numel() / k, n = weight.shape[0];
        var shape = x.shape;
        shape[^1] = n;
        var y = empty(shape, ScalarType.Float32);
        var px = (nint)TensorMemory.Float32(x);
        var pw = (nint)TensorMemory.Float32(weight);
        var pb = bias is null ? 0 : (nint)TensorMemory.Float32(bias);
        var py = (nint)TensorMemory.Float32(y);
        var strips = n / Strip;
        void Columns(int s)
        {
            for (long r = 0; r < m; r += Rows) Tile((float*)px, (float*)pw, (float*)pb, (float*)py, m, k, n, r, (long)s * Strip);
        }
        if (split) SpinPool.For((int)strips, Columns);
        else
            for (var s = 0; s < strips; s++) Columns(s);
        GC.KeepAlive(x);
        GC.KeepAlive(weight);
        GC.KeepAlive(bias);
        return y;
    }

    /// <summary>Rows [r, r + 8) (a short last block repeats its last row; only real rows are stored) × columns [c, c + 32).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Tile(float* x, float* w, float* bias, float* y, long m, long k, long n, long r, long c)
    {
        var last = m - 1;
        float* x0 = x + r * k, x1 = x + Math.Min(r + 1, last) * k, x2 = x + Math.Min(r + 2, last) * k, x3 = x + Math.Min(r + 3, last) * k;
        float* x4 = x + Math.Min(r + 4, last) * k, x5 = x + Math.Min(r + 5, last) * k, x6 = x + Math.Min(r + 6, last) * k, x7 = x + Math.Min(r + 7, last) * k;
        var b0 = bias is null ? Vector512<float>.Zero : Vector512.Load(bias + c);
        var b1 = bias is null ? Vector512<float>.Zero : Vector512.Load(bias + c + Lanes);
        Vector512<float> a00 = b0, a01 = b1, a10 = b0, a11 = b1, a20 = b0, a21 = b1, a30 = b0, a31 = b1;
        Vector512<float> a40 = b0, a41 = b1, a50 = b0, a51 = b1, a60 = b0, a61 = b1, a70 = b0, a71 = b1;
        var wk = w + c;
        for (long i = 0; i < k; i++, wk += n)
        {
            var w0 = Vector512.Load(wk);
            var w1 = Vector512.Load(wk + Lanes);
            Row(x0[i], w0, w1, ref a00, ref a01);
            Row(x1[i], w0, w1, ref a10, ref a11);
            Row(x2[i], w0, w1, ref a20, ref a21);
            Row(x3[i], w0, w1, ref a30, ref a31);
            Row(x4[i], w0, w1, ref a40, ref a41);
            Row(x5[i], w0, w1, ref a50, ref a51);
            Row(x6[i], w0, w1, ref a60, ref a61);
            Row(x7[i], w0, w1, ref a70, ref a71);
        }
        var rows = (int)Math.Min(Rows, m - r);
        var out0 = y + r * n + c;
        StoreRow(out0, 0, rows, a00, a01);
        StoreRow(out0 + n, 1, rows, a10, a11);
        StoreRow(out0 + 2 * n, 2, rows, a20, a21);
        StoreRow(out0 + 3 * n, 3, rows, a30, a31);
        StoreRow(out0 + 4 * n, 4, rows, a40, a41);
        StoreRow(out0 + 5 * n, 5, rows, a50, a51);
        StoreRow(out0 + 6 * n, 6, rows, a60, a61);
        StoreRow(out0 + 7 * n, 7, rows, a70, a71);
    }

    /// <summary>One tile row's step: <c>a0 += x·w0</c>, <c>a1 += x·w1</c> (inlined; the accumulators stay in registers).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row(float x, Vector512<float> w0, Vector512<float> w1, ref Vector512<float> a0, ref Vector512<float> a1)
    {
        var v = Vector512.Create(x);
        a0 = Avx512F.FusedMultiplyAdd(v, w0, a0);
        a1 = Avx512F.FusedMultiplyAdd(v, w1, a1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(float* at, int row, int rows, Vector512<float> left, Vector512<float> right)
    {
        if (row >= rows) return;
        left.Store(at);
        right.Store(at + Lanes);
    }
}
