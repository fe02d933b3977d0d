using TokenEmbed.Scoring;

namespace TokenEmbed;

/// <summary>Late-interaction scoring over stored token embeddings (what <see cref="Llm.Score(string, string, PoolingParams?)"/> computes for ColBERT-style models).</summary>
public static class LateInteraction
{
    /// <summary>
    /// MaxSim: the sum over query token vectors of the largest dot product with any document token vector, in float32.
    /// Both outputs must be TokenEmbed outputs (<c>[num_tokens, dim]</c>) of the same dim; normalized vectors give cosine-based MaxSim.
    /// </summary>
    /// <param name="query">The query's token embeddings.</param>
    /// <param name="document">The document's token embeddings.</param>
    /// <exception cref="ArgumentException">
    /// An output is not <c>[num_tokens, dim]</c> with <c>num_tokens · dim</c> values, the dims differ, a side has no token, or a
    /// value is NaN or infinite.
    /// </exception>
    public static float MaxSim(PoolingOutput query, PoolingOutput document)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(document);
        Check(query, nameof(query));
        Check(document, nameof(document));
        return Scoring.MaxSim.Score(query, document);
    }

    /// <summary>
    /// PyLate's token pooling of a document's stored vectors (what <see cref="PoolingParams.PoolFactor"/> does at encode time):
    /// the first <paramref name="protectedTokens"/> vectors are kept as they are; the rest are clustered (Ward linkage over
    /// cosine distances, as scipy does) into <c>max(n / poolFactor, 1)</c> clusters, each replaced by its mean. The result is
    /// the cluster means followed by the protected vectors, as PyLate orders them.
    /// </summary>
    /// <param name="document">The document's token vectors <c>[num_tokens, dim]</c>, normally L2-normalized.</param>
    /// <param name="poolFactor">About one vector is kept per this many tokens; 1 returns <paramref name="document"/> unchanged.</param>
    /// <param name="protectedTokens">Leading vectors kept out of the clustering (PyLate's default: 1, the [CLS] vector).</param>
    /// <exception cref="ArgumentException"><paramref name="document"/> is not <c>[num_tokens, dim]</c> or has a non-finite value.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="poolFactor"/> is below 1 or <paramref name="protectedTokens"/> is negative.</exception>
    public static PoolingOutput PoolTokens(PoolingOutput document, int poolFactor, int protectedTokens = 1)
    {
        ArgumentNullException.ThrowIfNull(document);
        Check(document, nameof(document));
        ArgumentOutOfRangeException.ThrowIfLessThan(poolFactor, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(protectedTokens);
        return Pooling.HierarchicalPooling.Pool(document, poolFactor, protectedTokens);
    }

    private static void Check(PoolingOutput o, string name)
    {
        if (o.Shape is not [var n, var dim] || n <= 0 || dim <= 0 || (long)n * dim != o.Data.Length)
            throw new ArgumentException(
                $"{name} must be token embeddings [num_tokens > 0, dim > 0] holding num_tokens · dim values; got shape [{string.Join(", ", o.Shape)}] with {o.Data.Length} values.", name);
        var bad = Array.FindIndex(o.Data, v => !float.IsFinite(v));
        if (bad >= 0)
            throw new ArgumentException($"{name} has a non-finite value ({o.Data[bad]}) at token {bad / dim}, component {bad % dim}.", name);
    }
}
