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
    public static float MaxSim(PoolingOutput query, PoolingOutput document)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(document);
        return Scoring.MaxSim.Score(query, document);
    }
}
