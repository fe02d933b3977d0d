using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace TokenEmbed.Kernels;

/// <summary>
/// The elementwise float32 functions TokenEmbed's AVX-512 kernels apply in registers: e^x (softmax), the exact (erf) GELU and
/// a LayerNorm over a row (a linear layer's epilogue).
/// </summary>
internal static unsafe class VectorMath
{
    private const int Lanes = 16;

    /// <summary>
    /// e^x for x ≤ 0 (what softmax and erf take), within 2 float32 ulps: x = n·ln 2 + r with n = round(x·log₂e) and r reduced
    /// in two steps (Cody–Waite), e^r by its Taylor polynomial of degree 7 (|r| ≤ ln 2 / 2: truncation below 6e-9), scaled by
    /// 2^n with <c>vscalefps</c>. Inputs below −104 give 0 (float32's e^x underflows there), −∞ included. .NET's
    /// <c>Vector512.Exp</c> is as accurate but was measured several times slower here.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        x = Vector512.Max(x, Vector512.Create(-104f));
        var n = Avx512F.RoundScale(x * Vector512.Create(1.44269504088896341f), 0);   // nearest, ties to even
        var r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(-0.693359375f), x);
        r = Avx512F.FusedMultiplyAdd(n, Vector512.Create(2.12194440e-4f), r);
        var p = Vector512.Create(1f / 5040f);
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 720f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 120f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 24f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(1f / 6f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512.Create(0.5f));
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512<float>.One);
        p = Avx512F.FusedMultiplyAdd(p, r, Vector512<float>.One);
        return Avx512F.Scale(p, n);
    }

    /// <summary>
    /// erf(x) within 1.5e-7 absolute: Abramowitz and Stegun 7.1.26, <c>1 − t·P(t)·e^(−x²)</c> with <c>t = 1 / (1 + p·|x|)</c>
    /// and P of degree 4, with the sign of x (the form libtorch's vectorized CPU erf takes).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Erf(Vector512<float> x)
    {
        var sign = x & Vector512.Create(-0f);
        var a = x & Vector512.Create(0x7fffffff).AsSingle();
        var t = Vector512<float>.One / Avx512F.FusedMultiplyAdd(Vector512.Create(0.3275911f), a, Vector512<float>.One);
        var p = Vector512.Create(1.061405429f);
        p = Avx512F.FusedMultiplyAdd(p, t, Vector512.Create(-1.453152027f));
        p = Avx512F.FusedMultiplyAdd(p, t, Vector512.Create(1.421413741f));
        p = Avx512F.FusedMultiplyAdd(p, t, Vector512.Create(-0.284496736f));
        p = Avx512F.FusedMultiplyAdd(p, t, Vector512.Create(0.254829592f));
        var e = Exp(-(a * a));
        var y = Avx512F.FusedMultiplyAddNegated(p * t, e, Vector512<float>.One);   // 1 − t·P(t)·e^(−x²)
        return y | sign;
    }

    /// <summary>The exact GELU, <c>x/2 · (1 + erf(x/√2))</c> (transformers' <c>"gelu"</c>, torch's default).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Gelu(Vector512<float> x)
    {
        var half = x * Vector512.Create(0.5f);
        return Avx512F.FusedMultiplyAdd(half, Erf(x * Vector512.Create(0.70710678118654752f)), half);
    }

    /// <summary>
    /// LayerNorm of one row of <paramref name="n"/> floats (a multiple of 16) in place: <c>(x − mean) / √(var + eps) · γ + β</c>,
    /// the mean and the (biased) variance summed in float32 over the row in two passes as libtorch does; β may be null.
    /// </summary>
    public static void LayerNormRow(float* row, long n, float* gamma, float* beta, float eps)
    {
        var s = Vector512<float>.Zero;
        for (long j = 0; j < n; j += Lanes) s += Vector512.Load(row + j);
        var mean = Vector512.Sum(s) / n;
        var m = Vector512.Create(mean);
        var q = Vector512<float>.Zero;
        for (long j = 0; j < n; j += Lanes)
        {
            var d = Vector512.Load(row + j) - m;
            q = Avx512F.FusedMultiplyAdd(d, d, q);
        }
        var rstd = Vector512.Create(1f / MathF.Sqrt(Vector512.Sum(q) / n + eps));
        for (long j = 0; j < n; j += Lanes)
        {
            var y = (Vector512.Load(row + j) - m) * rstd * Vector512.Load(gamma + j);
            if (beta != null) y += Vector512.Load(beta + j);
            y.Store(row + j);
        }
    }
}
