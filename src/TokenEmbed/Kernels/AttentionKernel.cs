using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Kernels;

/// <summary>
/// Multi-head attention <c>softmax(Q·Kᵀ·scale + mask)·V</c> on the CPU in float32 with AVX-512, one pass per (batch, head):
/// the scores of a block of four query rows stay in cache from the product through the softmax to the weighted sum, where
/// libtorch's eager path writes and reads [B, heads, T, S] score and probability tensors (25 MB each for 32 × 128 MiniLM
/// tokens) and its fused SDPA kernel takes MKL's slow small-GEMM path on AMD CPUs. It reads Q, K and V in place (strided
/// views of a fused projection, no split copies) and writes the context as [B, T, heads, hd], so merging the heads is a view.
/// </summary>
/// <remarks>
/// The math is transformers' eager attention in float32: the products are summed in another order than a BLAS sums them
/// (differences of a few float32 ulps), the softmax subtracts the row maximum and divides by the sum, and an additive mask
/// of finfo.min keeps fully masked rows finite as the eager path does. Grouped-query attention reads each key/value head for
/// its <c>heads / kvHeads</c> query heads. Work is split over (batch, head) pairs on libtorch's intra-op thread count.
/// </remarks>
internal static unsafe class AttentionKernel
{
    private const int Lanes = 16;

    /// <summary>Whether the CPU and runtime can run the kernel (AVX-512 that .NET accelerates, and the tensor data entry point).</summary>
    public static bool IsAvailable { get; } = Avx512F.IsSupported && Vector512.IsHardwareAccelerated && TensorMemory.IsAvailable;

    /// <summary>
    /// Whether the kernel takes these operands: CPU float32 <paramref name="q"/> [B, H, T, hd] and <paramref name="k"/> /
    /// <paramref name="v"/> [B, Hkv, S, hd] (H a multiple of Hkv, hd a multiple of 16, unit stride along hd), and an optional
    /// float32 additive mask broadcastable as [B or 1, 1, T or 1, S].
    /// </summary>
    public static bool Supports(Tensor q, Tensor k, Tensor v, Tensor? mask)
    {
        if (!IsAvailable || q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
        foreach (var t in new[] { q, k, v })
            if (t.device_type != DeviceType.CPU || t.dtype != ScalarType.Float32 || t.stride(3) != 1) return false;
        long b = q.shape[0], h = q.shape[1], tq = q.shape[2], d = q.shape[3], hkv = k.shape[1], s = k.shape[2];
        if (d % Lanes != 0 || k.shape[3] != d || v.shape[3] != d || k.shape[0] != b || v.shape[0] != b) return false;
        if (v.shape[1] != hkv || v.shape[2] != s || hkv == 0 || h % hkv != 0 || tq == 0 || s == 0) return false;
        return MaskFits(mask, b, tq, s);
    }

    /// <summary>
    /// The attention output [B, H, T, hd] (a view of a contiguous [B, T, H, hd] tensor) of operands that
    /// <see cref="Supports"/> accepted; <paramref name="scale"/> multiplies the products (1/√hd in every family so far).
    /// </summary>
    /// <param name="q">Queries [B, H, T, hd].</param>
    /// <param name="k">Keys [B, Hkv, S, hd].</param>
    /// <param name="v">Values [B, Hkv, S, hd].</param>
    /// <param name="mask">An additive mask broadcastable as [B, 1, T, S], or null.</param>
    /// <param name="scale">The products' factor.</param>
    public static Tensor Run(Tensor q, Tensor k, Tensor v, Tensor? mask, float scale)
    {
        var job = new Job(q, k, v, mask, scale);
        using var output = empty([job.B, job.T, job.H, job.D], ScalarType.Float32);
        Execute(job, output);
        GC.KeepAlive(q);
        GC.KeepAlive(k);
        GC.KeepAlive(v);
        GC.KeepAlive(mask);
        return output.permute(0, 2, 1, 3);
    }

    /// <summary>
    /// Self-attention over a fused projection <paramref name="qkv"/> [B, T, (H + 2·Hkv)·hd] laid out as [Q; K; V], without
    /// views of it: the context [B, T, H·hd], heads merged. <see cref="SupportsFused"/> says whether the kernel takes it.
    /// </summary>
    public static Tensor RunFused(Tensor qkv, int heads, int kvHeads, Tensor? mask, float scale)
    {
        var job = new Job(qkv, heads, kvHeads, mask, scale);
        var output = empty([job.B, job.T, job.H * job.D], ScalarType.Float32);
        Execute(job, output);
        GC.KeepAlive(qkv);
        GC.KeepAlive(mask);
        return output;
    }

    /// <summary>Whether <see cref="RunFused"/> takes a fused projection of <paramref name="heads"/> query and <paramref name="kvHeads"/> key/value heads.</summary>
    public static bool SupportsFused(Tensor qkv, int heads, int kvHeads, Tensor? mask)
    {
        if (!IsAvailable || qkv.dim() != 3 || qkv.device_type != DeviceType.CPU || qkv.dtype != ScalarType.Float32 || !qkv.is_contiguous()) return false;
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0 || qkv.shape[2] % (heads + 2 * kvHeads) != 0) return false;
        long d = qkv.shape[2] / (heads + 2 * kvHeads), b = qkv.shape[0], t = qkv.shape[1];
        return d % Lanes == 0 && t > 0 && MaskFits(mask, b, t, t);
    }

    private static bool MaskFits(Tensor? mask, long b, long tq, long s) =>
        mask is null
        || (mask.device_type == DeviceType.CPU && mask.dtype == ScalarType.Float32 && mask.dim() == 4 && mask.shape[1] == 1
            && (mask.shape[0] == 1 || mask.shape[0] == b) && (mask.shape[2] == 1 || mask.shape[2] == tq) && mask.shape[3] == s
            && (mask.stride(3) == 1 || s == 1));

    /// <summary>
    /// Runs the (batch, head) items into <paramref name="output"/> with <see cref="KernelThreads"/>, a contiguous share of the
    /// items a worker (each item prefetches the next one's rows).
    /// </summary>
    private static void Execute(Job job, Tensor output)
    {
        job.Output = TensorMemory.Float32(output);
        KernelThreads.For(job.B * job.H, shares: true, (from, to) => Run(job, from, to));
    }

    /// <summary>The operands' addresses, sizes and element strides (a mask's broadcast axes get stride 0).</summary>
    private sealed class Job
    {
        public readonly long B, H, T, D, Hkv, S;
        public readonly long QB, QH, QT, KB, KH, KT, VB, VH, VT;
        public readonly long MB, MT;
        public readonly float* Q, K, V, Mask;
        public readonly float Scale;
        public float* Output;

        public Job(Tensor q, Tensor k, Tensor v, Tensor? mask, float scale) : this(mask, scale)
        {
            B = q.shape[0]; H = q.shape[1]; T = q.shape[2]; D = q.shape[3]; Hkv = k.shape[1]; S = k.shape[2];
            QB = q.stride(0); QH = q.stride(1); QT = q.stride(2);
            KB = k.stride(0); KH = k.stride(1); KT = k.stride(2);
            VB = v.stride(0); VH = v.stride(1); VT = v.stride(2);
            Q = TensorMemory.Float32(q);
            K = TensorMemory.Float32(k);
            V = TensorMemory.Float32(v);
        }

        /// <summary>The operands as slices of a contiguous fused projection [B, T, (H + 2·Hkv)·hd].</summary>
        public Job(Tensor qkv, int heads, int kvHeads, Tensor? mask, float scale) : this(mask, scale)
        {
            B = qkv.shape[0]; T = S = qkv.shape[1]; H = heads; Hkv = kvHeads;
            var width = qkv.shape[2];
            D = width / (heads + 2 * kvHeads);
            QB = KB = VB = T * width;
            QT = KT = VT = width;
            QH = KH = VH = D;
            Q = TensorMemory.Float32(qkv);
            K = Q + H * D;
            V = K + Hkv * D;
        }

        private Job(Tensor? mask, float scale)
        {
            if (mask is not null)
            {
                Mask = TensorMemory.Float32(mask);
                MB = mask.shape[0] == 1 ? 0 : mask.stride(0);
                MT = mask.shape[2] == 1 ? 0 : mask.stride(2);
            }
            Scale = scale;
        }
    }

    /// <summary>Runs (batch, head) items [<paramref name="first"/>, <paramref name="end"/>) with this thread's scratch.</summary>
    private static void Run(Job job, long first, long end)
    {
        // Scratch: Kᵀ of one head [D, Sp] and the scores of four query rows [4, Sp], Sp = S rounded up to 16 lanes.
        var sp = (job.S + Lanes - 1) / Lanes * Lanes;
        var scratch = (float*)NativeMemory.AlignedAlloc((nuint)((job.D + 4) * sp * sizeof(float)), 64);
        try
        {
            for (var item = first; item < end; item++) Head(job, item / job.H, item % job.H, scratch, sp);
        }
        finally
        {
            NativeMemory.AlignedFree(scratch);
        }
    }

    /// <summary>Attention of head <paramref name="h"/> of batch row <paramref name="b"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Head(Job job, long b, long h, float* scratch, long sp)
    {
        long d = job.D, s = job.S, t = job.T;
        var rep = job.H / job.Hkv;
        var q = job.Q + b * job.QB + h * job.QH;
        var k = job.K + b * job.KB + h / rep * job.KH;
        var v = job.V + b * job.VB + h / rep * job.VH;
        var mask = job.Mask is null ? null : job.Mask + b * job.MB;
        var outRow = job.H * d;
        var o = job.Output + b * t * outRow + h * d;
        var kt = scratch;
        var scores = scratch + d * sp;
        // The next head's rows are fetched while this one computes (its first touch of them is otherwise a cache miss per row).
        var next = h + 1 < job.H;
        var nq = next ? q + job.QH : null;
        var nk = next ? job.K + b * job.KB + (h + 1) / rep * job.KH : null;
        var nv = next ? job.V + b * job.VB + (h + 1) / rep * job.VH : null;

        Transpose(k, job.KT, s, d, kt, sp);

        for (long i = 0; i < t; i += 4)
        {
            // Four query rows (a short last block repeats its last row; only real rows are stored).
            var last = t - 1;
            long i1 = Math.Min(i + 1, last), i2 = Math.Min(i + 2, last), i3 = Math.Min(i + 3, last);
            Scores(kt, d, sp, q + i * job.QT, q + i1 * job.QT, q + i2 * job.QT, q + i3 * job.QT, scores);
            var inverse = Softmax(scores, s, sp, job.Scale,
                mask is null ? null : mask + i * job.MT, mask is null ? null : mask + i1 * job.MT,
                mask is null ? null : mask + i2 * job.MT, mask is null ? null : mask + i3 * job.MT);
            Weighted(v, job.VT, s, d, sp, scores, inverse, o + i * outRow, outRow, (int)Math.Min(4, t - i));
            if (next)
            {
                Prefetch(nq, job.QT, i, Math.Min(i + 4, t), d);
                long from = i * s / t, to = Math.Min(i + 4, t) * s / t;
                Prefetch(nk, job.KT, from, to, d);
                Prefetch(nv, job.VT, from, to, d);
            }
        }
    }

    /// <summary>Brings rows [<paramref name="from"/>, <paramref name="to"/>) of <paramref name="d"/> floats into the cache.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Prefetch(float* rows, long stride, long from, long to, long d)
    {
        for (var j = from; j < to; j++)
            for (long c = 0; c < d; c += Lanes) Sse.Prefetch0(rows + j * stride + c);
    }

    /// <summary>
    /// Kᵀ [d, sp] of the key rows <paramref name="k"/> (<paramref name="s"/> rows, <paramref name="kt"/> apart), the columns past
    /// <paramref name="s"/> zeroed: the score product then reads 16 keys per load. Eight keys at a time are gathered.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Transpose(float* k, long rowStride, long s, long d, float* kt, long sp)
    {
        long j = 0;
        if (rowStride * 8 <= int.MaxValue)
        {
            var stride = (int)rowStride;
            var index = Vector256.Create(0, stride, 2 * stride, 3 * stride, 4 * stride, 5 * stride, 6 * stride, 7 * stride);
            for (; j + 8 <= s; j += 8)
            {
                var rows = k + j * rowStride;
                for (long c = 0; c < d; c++) Avx2.GatherVector256(rows + c, index, 4).Store(kt + c * sp + j);
            }
        }
        for (; j < s; j++)
        {
            var row = k + j * rowStride;
            for (long c = 0; c < d; c++) kt[c * sp + j] = row[c];
        }
        for (long c = 0; c < d; c++)
            for (j = s; j < sp; j++) kt[c * sp + j] = 0f;
    }

    /// <summary><c>scores[r, j] = ⟨q_r, k_j⟩</c> for four query rows and every (padded) key column.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Scores(float* kt, long d, long sp, float* q0, float* q1, float* q2, float* q3, float* scores)
    {
        long j = 0;
        for (; j + 4 * Lanes <= sp; j += 4 * Lanes)
        {
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
            Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
            var col = kt + j;
            for (long c = 0; c < d; c++, col += sp)
            {
                var k0 = Vector512.Load(col);
                var k1 = Vector512.Load(col + Lanes);
                var k2 = Vector512.Load(col + 2 * Lanes);
                var k3 = Vector512.Load(col + 3 * Lanes);
                var x = Vector512.Create(q0[c]);
                a00 = Avx512F.FusedMultiplyAdd(x, k0, a00); a01 = Avx512F.FusedMultiplyAdd(x, k1, a01);
                a02 = Avx512F.FusedMultiplyAdd(x, k2, a02); a03 = Avx512F.FusedMultiplyAdd(x, k3, a03);
                x = Vector512.Create(q1[c]);
                a10 = Avx512F.FusedMultiplyAdd(x, k0, a10); a11 = Avx512F.FusedMultiplyAdd(x, k1, a11);
                a12 = Avx512F.FusedMultiplyAdd(x, k2, a12); a13 = Avx512F.FusedMultiplyAdd(x, k3, a13);
                x = Vector512.Create(q2[c]);
                a20 = Avx512F.FusedMultiplyAdd(x, k0, a20); a21 = Avx512F.FusedMultiplyAdd(x, k1, a21);
                a22 = Avx512F.FusedMultiplyAdd(x, k2, a22); a23 = Avx512F.FusedMultiplyAdd(x, k3, a23);
                x = Vector512.Create(q3[c]);
                a30 = Avx512F.FusedMultiplyAdd(x, k0, a30); a31 = Avx512F.FusedMultiplyAdd(x, k1, a31);
                a32 = Avx512F.FusedMultiplyAdd(x, k2, a32); a33 = Avx512F.FusedMultiplyAdd(x, k3, a33);
            }
            Store(scores + j, sp, 4, a00, a10, a20, a30);
            Store(scores + j + Lanes, sp, 4, a01, a11, a21, a31);
            Store(scores + j + 2 * Lanes, sp, 4, a02, a12, a22, a32);
            Store(scores + j + 3 * Lanes, sp, 4, a03, a13, a23, a33);
        }
        for (; j < sp; j += Lanes)
        {
            Column4(q0, q1, q2, q3, kt + j, sp, d, out var a0, out var a1, out var a2, out var a3);
            Store(scores + j, sp, 4, a0, a1, a2, a3);
        }
    }

    /// <summary>
    /// <c>a_r = Σ_k x_r[k]·y_k</c> over <paramref name="count"/> steps, for four scalar rows <c>x_r</c> and the vectors
    /// <c>y_k = y + k·stride</c>: the one-vector tails of both products (keys × head values, probabilities × values).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Column4(float* x0, float* x1, float* x2, float* x3, float* y, long stride, long count,
        out Vector512<float> a0, out Vector512<float> a1, out Vector512<float> a2, out Vector512<float> a3)
    {
        a0 = a1 = a2 = a3 = default;
        for (long k = 0; k < count; k++, y += stride)
        {
            var yk = Vector512.Load(y);
            a0 = Avx512F.FusedMultiplyAdd(Vector512.Create(x0[k]), yk, a0);
            a1 = Avx512F.FusedMultiplyAdd(Vector512.Create(x1[k]), yk, a1);
            a2 = Avx512F.FusedMultiplyAdd(Vector512.Create(x2[k]), yk, a2);
            a3 = Avx512F.FusedMultiplyAdd(Vector512.Create(x3[k]), yk, a3);
        }
    }

    /// <summary>
    /// Four score rows in place (<paramref name="sp"/> apart): <c>x·scale + mask</c>, then <c>exp(x − max)</c> (the padding
    /// columns get 0); returns 1 / each row's sum, which <see cref="Weighted"/> applies to the weighted sum (softmax's division,
    /// one multiply per output). The rows are interleaved so that their exponentials overlap in the pipeline.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static Vector128<float> Softmax(float* scores, long s, long sp, float scale, float* m0, float* m1, float* m2, float* m3)
    {
        float* r0 = scores, r1 = scores + sp, r2 = scores + 2 * sp, r3 = scores + 3 * sp;
        var vscale = Vector512.Create(scale);
        var x0 = Vector512.Create(float.NegativeInfinity);
        Vector512<float> x1 = x0, x2 = x0, x3 = x0;
        long j = 0;
        for (; j + Lanes <= s; j += Lanes)
        {
            x0 = Vector512.Max(x0, Scaled(r0 + j, vscale, m0, j));
            x1 = Vector512.Max(x1, Scaled(r1 + j, vscale, m1, j));
            x2 = Vector512.Max(x2, Scaled(r2 + j, vscale, m2, j));
            x3 = Vector512.Max(x3, Scaled(r3 + j, vscale, m3, j));
        }
        var max = Vector128.Create(HorizontalMax(x0), HorizontalMax(x1), HorizontalMax(x2), HorizontalMax(x3));
        if (j < s)
            for (var r = 0; r < 4; r++)
            {
                var row = scores + r * sp;
                var mask = r switch { 0 => m0, 1 => m1, 2 => m2, _ => m3 };
                var m = max[r];
                for (var c = j; c < s; c++)
                {
                    var x = row[c] * scale;
                    if (mask is not null) x += mask[c];
                    row[c] = x;
                    m = MathF.Max(m, x);
                }
                max = max.WithElement(r, m);
            }
        for (var r = 0; r < 4; r++)
            for (var c = s; c < sp; c++) scores[r * sp + c] = float.NegativeInfinity;

        Vector512<float> n0 = Vector512.Create(max[0]), n1 = Vector512.Create(max[1]), n2 = Vector512.Create(max[2]), n3 = Vector512.Create(max[3]);
        Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
        for (j = 0; j < sp; j += Lanes)
        {
            var e0 = VectorMath.Exp(Vector512.Load(r0 + j) - n0);
            var e1 = VectorMath.Exp(Vector512.Load(r1 + j) - n1);
            var e2 = VectorMath.Exp(Vector512.Load(r2 + j) - n2);
            var e3 = VectorMath.Exp(Vector512.Load(r3 + j) - n3);
            e0.Store(r0 + j);
            e1.Store(r1 + j);
            e2.Store(r2 + j);
            e3.Store(r3 + j);
            s0 += e0;
            s1 += e1;
            s2 += e2;
            s3 += e3;
        }
        return Vector128<float>.One / Vector128.Create(Vector512.Sum(s0), Vector512.Sum(s1), Vector512.Sum(s2), Vector512.Sum(s3));
    }

    /// <summary><c>row[0..16) · scale + mask[j..j+16)</c>, stored back and returned.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Scaled(float* row, Vector512<float> scale, float* mask, long j)
    {
        var x = Vector512.Load(row) * scale;
        if (mask is not null) x += Vector512.Load(mask + j);
        x.Store(row);
        return x;
    }

    private static float HorizontalMax(Vector512<float> v)
    {
        var m = Vector256.Max(v.GetLower(), v.GetUpper());
        var m2 = Vector128.Max(m.GetLower(), m.GetUpper());
        return MathF.Max(MathF.Max(m2[0], m2[1]), MathF.Max(m2[2], m2[3]));
    }

    /// <summary>
    /// <c>out_r = inverse_r · Σ_j p[r, j]·v_j</c> for four rows of softmax numerators; the first <paramref name="rows"/> are
    /// stored, each <paramref name="outStride"/> apart.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Weighted(float* v, long vt, long s, long d, long sp, float* p, Vector128<float> inverse, float* o, long outStride, int rows)
    {
        var i0 = Vector512.Create(inverse[0]);
        var i1 = Vector512.Create(inverse[1]);
        var i2 = Vector512.Create(inverse[2]);
        var i3 = Vector512.Create(inverse[3]);
        long c = 0;
        for (; c + 2 * Lanes <= d; c += 2 * Lanes)
        {
            Vector512<float> a00 = default, a01 = default, a10 = default, a11 = default;
            Vector512<float> a20 = default, a21 = default, a30 = default, a31 = default;
            var vj = v + c;
            for (long j = 0; j < s; j++, vj += vt)
            {
                var v0 = Vector512.Load(vj);
                var v1 = Vector512.Load(vj + Lanes);
                var x = Vector512.Create(p[j]);
                a00 = Avx512F.FusedMultiplyAdd(x, v0, a00); a01 = Avx512F.FusedMultiplyAdd(x, v1, a01);
                x = Vector512.Create(p[sp + j]);
                a10 = Avx512F.FusedMultiplyAdd(x, v0, a10); a11 = Avx512F.FusedMultiplyAdd(x, v1, a11);
                x = Vector512.Create(p[2 * sp + j]);
                a20 = Avx512F.FusedMultiplyAdd(x, v0, a20); a21 = Avx512F.FusedMultiplyAdd(x, v1, a21);
                x = Vector512.Create(p[3 * sp + j]);
                a30 = Avx512F.FusedMultiplyAdd(x, v0, a30); a31 = Avx512F.FusedMultiplyAdd(x, v1, a31);
            }
            Store(o + c, outStride, rows, a00 * i0, a10 * i1, a20 * i2, a30 * i3);
            Store(o + c + Lanes, outStride, rows, a01 * i0, a11 * i1, a21 * i2, a31 * i3);
        }
        for (; c < d; c += Lanes)
        {
            Column4(p, p + sp, p + 2 * sp, p + 3 * sp, v + c, vt, s, out var a0, out var a1, out var a2, out var a3);
            Store(o + c, outStride, rows, a0 * i0, a1 * i1, a2 * i2, a3 * i3);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* at, long stride, int rows, Vector512<float> r0, Vector512<float> r1, Vector512<float> r2, Vector512<float> r3)
    {
        r0.Store(at);
        if (rows > 1) r1.Store(at + stride);
        if (rows > 2) r2.Store(at + 2 * stride);
        if (rows > 3) r3.Store(at + 3 * stride);
    }
}
