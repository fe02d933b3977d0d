using System.Numerics;

namespace TokenEmbed.Scoring;

/// <summary>Late-interaction scoring on the CPU.</summary>
internal static class MaxSim
{
    /// <summary>Σ over query rows of the max over document rows of ⟨q, d⟩, in float32.</summary>
    public static float Score(PoolingOutput query, PoolingOutput document)
    {
        if (query.Shape.Length != 2 || document.Shape.Length != 2 || query.Shape[1] != document.Shape[1])
            throw new ArgumentException($"MaxSim needs [n, dim] token vectors of one dim; got [{string.Join(", ", query.Shape)}] and [{string.Join(", ", document.Shape)}].");
        var dim = query.Shape[1];
        var total = 0f;
        for (var i = 0; i < query.Shape[0]; i++)
        {
            var q = query.Data.AsSpan(i * dim, dim);
            var best = float.NegativeInfinity;
            for (var j = 0; j < document.Shape[0]; j++)
            {
                var s = Dot(q, document.Data.AsSpan(j * dim, dim));
                if (s > best) best = s;
            }
            total += best;
        }
        return total;
    }

    /// <summary>The dot product of two equal-length vectors.</summary>
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
}
