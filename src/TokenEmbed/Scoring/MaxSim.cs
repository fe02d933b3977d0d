using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TokenEmbed.Scoring;

/// <summary>
/// Late-interaction kernels on the CPU: dot products of row blocks (four query rows share each load of a document row)
/// with the same per-lane summation as <see cref="Dot"/>, so every path gives bit-identical scores. The kernels are compiled
/// fully optimized at once (a search's first thousand documents would otherwise run unoptimized code, 10x slower).
/// </summary>
internal static class MaxSim
{
    /// <summary>Σ over query rows of the max over document rows of ⟨q, d⟩, in float32.</summary>
    public static float Score(PoolingOutput query, PoolingOutput document)
    {
        if (query.Shape.Length != 2 || document.Shape.Length != 2 || query.Shape[1] != document.Shape[1])
            throw new ArgumentException($"MaxSim needs [n, dim] token vectors of one dim; got [{string.Join(", ", query.Shape)}] and [{string.Join(", ", document.Shape)}].");
        return Score(query.Data, query.Shape[0], document.Data, document.Shape[0], query.Shape[1]);
    }

    /// <summary>MaxSim of <paramref name="nq"/> query rows and <paramref name="nd"/> document rows of <paramref name="dim"/> values.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Score(ReadOnlySpan<float> q, int nq, ReadOnlySpan<float> d, int nd, int dim)
    {
        var total = 0f;
        var i = 0;
        for (; i + 4 <= nq; i += 4)
        {
            float b0 = float.NegativeInfinity, b1 = b0, b2 = b0, b3 = b0;
            Rows4(q, i, dim, out var q0, out var q1, out var q2, out var q3);
            for (var j = 0; j < nd; j++)
            {
                Dot4(q0, q1, q2, q3, d.Slice(j * dim, dim), out var s0, out var s1, out var s2, out var s3);
                if (s0 > b0) b0 = s0;
                if (s1 > b1) b1 = s1;
                if (s2 > b2) b2 = s2;
                if (s3 > b3) b3 = s3;
            }
            total += b0;
            total += b1;
            total += b2;
            total += b3;
        }
        for (; i < nq; i++)
        {
            var qi = q.Slice(i * dim, dim);
            var best = float.NegativeInfinity;
            for (var j = 0; j < nd; j++)
            {
                var s = Dot(qi, d.Slice(j * dim, dim));
                if (s > best) best = s;
            }
            total += best;
        }
        return total;
    }

    /// <summary><c>output[i · nb + j] = ⟨a_i, b_j⟩</c> for <paramref name="na"/> rows of a and <paramref name="nb"/> rows of b.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Dots(ReadOnlySpan<float> a, int na, ReadOnlySpan<float> b, int nb, int dim, Span<float> output)
    {
        var i = 0;
        for (; i + 4 <= na; i += 4)
        {
            Rows4(a, i, dim, out var a0, out var a1, out var a2, out var a3);
            for (var j = 0; j < nb; j++)
            {
                Dot4(a0, a1, a2, a3, b.Slice(j * dim, dim), out var s0, out var s1, out var s2, out var s3);
                output[i * nb + j] = s0;
                output[(i + 1) * nb + j] = s1;
                output[(i + 2) * nb + j] = s2;
                output[(i + 3) * nb + j] = s3;
            }
        }
        for (; i < na; i++)
            for (var j = 0; j < nb; j++) output[i * nb + j] = Dot(a.Slice(i * dim, dim), b.Slice(j * dim, dim));
    }

    /// <summary>Rows i..i+3 of a row-major matrix.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Rows4(ReadOnlySpan<float> m, int i, int dim, out ReadOnlySpan<float> r0, out ReadOnlySpan<float> r1, out ReadOnlySpan<float> r2, out ReadOnlySpan<float> r3)
    {
        r0 = m.Slice(i * dim, dim);
        r1 = m.Slice((i + 1) * dim, dim);
        r2 = m.Slice((i + 2) * dim, dim);
        r3 = m.Slice((i + 3) * dim, dim);
    }

    /// <summary>The dot product of two equal-length vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var sum = Vector<float>.Zero;
        var i = 0;
        for (; i <= a.Length - Vector<float>.Count; i += Vector<float>.Count)
            sum += new Vector<float>(a[i..]) * new Vector<float>(b[i..]);
        var s = Vector.Sum(sum);
        for (; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    /// <summary>Four dot products with one vector, each summed exactly as <see cref="Dot"/> sums it.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Dot4(ReadOnlySpan<float> a0, ReadOnlySpan<float> a1, ReadOnlySpan<float> a2, ReadOnlySpan<float> a3, ReadOnlySpan<float> b,
        out float s0, out float s1, out float s2, out float s3)
    {
        Vector<float> v0 = Vector<float>.Zero, v1 = v0, v2 = v0, v3 = v0;
        var i = 0;
        var n = b.Length;
        for (; i <= n - Vector<float>.Count; i += Vector<float>.Count)
        {
            var bv = new Vector<float>(b[i..]);
            v0 += new Vector<float>(a0[i..]) * bv;
            v1 += new Vector<float>(a1[i..]) * bv;
            v2 += new Vector<float>(a2[i..]) * bv;
            v3 += new Vector<float>(a3[i..]) * bv;
        }
        s0 = Vector.Sum(v0);
        s1 = Vector.Sum(v1);
        s2 = Vector.Sum(v2);
        s3 = Vector.Sum(v3);
        for (; i < n; i++)
        {
            s0 += a0[i] * b[i];
            s1 += a1[i] * b[i];
            s2 += a2[i] * b[i];
            s3 += a3[i] * b[i];
        }
    }

    /// <summary>
    /// Half → float for finite values (subnormals included): the magnitude bits moved to float's place and scaled by 2^112
    /// (the exponent-bias difference), the sign put back. Infinities and NaNs are never stored, so they are not handled.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void ToSingle(ReadOnlySpan<Half> source, Span<float> destination)
    {
        var bits = MemoryMarshal.Cast<Half, ushort>(source);
        var i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            var step = Vector<ushort>.Count;
            for (; i + step <= bits.Length; i += step)
            {
                Vector.Widen(new Vector<ushort>(bits[i..]), out var low, out var high);
                Widened(low).CopyTo(destination[i..]);
                Widened(high).CopyTo(destination[(i + Vector<uint>.Count)..]);
            }
        }
        for (; i < bits.Length; i++) destination[i] = (float)source[i];
    }

    private static Vector<float> Widened(Vector<uint> h)
    {
        var sign = (h & new Vector<uint>(0x8000u)) << 16;
        var magnitude = Vector.AsVectorSingle((h & new Vector<uint>(0x7fffu)) << 13) * new Vector<float>(5.192296858534828e33f);
        return Vector.AsVectorSingle(Vector.AsVectorUInt32(magnitude) | sign);
    }
}
