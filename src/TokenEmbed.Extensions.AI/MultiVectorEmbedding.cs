using Microsoft.Extensions.AI;

namespace TokenEmbed.Extensions.AI;

/// <summary>A multi-vector (one vector per token) embedding: ColBERT-style late-interaction representations.</summary>
public sealed class MultiVectorEmbedding : Embedding
{
    /// <summary>Creates an embedding of <paramref name="tokenCount"/> vectors of <paramref name="dimensions"/> floats.</summary>
    /// <param name="vectors">The vectors, row-major [tokenCount, dimensions].</param>
    /// <param name="tokenCount">The number of vectors.</param>
    /// <param name="dimensions">The size of each vector.</param>
    /// <exception cref="ArgumentException">The buffer's length is not <paramref name="tokenCount"/> × <paramref name="dimensions"/>.</exception>
    public MultiVectorEmbedding(ReadOnlyMemory<float> vectors, int tokenCount, int dimensions)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimensions);
        if (vectors.Length != (long)tokenCount * dimensions)
            throw new ArgumentException($"The vectors hold {vectors.Length} floats, not {tokenCount} × {dimensions}.", nameof(vectors));
        Vectors = vectors;
        TokenCount = tokenCount;
        TokenDimensions = dimensions;
    }

    /// <summary>The vectors, row-major [<see cref="TokenCount"/>, <see cref="Dimensions"/>].</summary>
    public ReadOnlyMemory<float> Vectors { get; }

    /// <summary>The number of vectors (tokens kept by the pooler).</summary>
    public int TokenCount { get; }

    /// <summary>The size of each token vector.</summary>
    public override int Dimensions => TokenDimensions;

    private int TokenDimensions { get; }

    /// <summary>The vectors as a library <see cref="PoolingOutput"/> [<see cref="TokenCount"/>, <see cref="Dimensions"/>].</summary>
    public PoolingOutput ToOutput() => new(Vectors.ToArray(), [TokenCount, Dimensions]);

    /// <summary>Token <paramref name="index"/>'s vector.</summary>
    /// <param name="index">0 … <see cref="TokenCount"/> − 1.</param>
    public ReadOnlyMemory<float> this[int index] =>
        (uint)index < (uint)TokenCount ? Vectors.Slice(index * Dimensions, Dimensions) : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>The late-interaction (MaxSim) score of this embedding as the query against <paramref name="document"/>.</summary>
    /// <param name="document">The document's vectors, of the same <see cref="Dimensions"/>.</param>
    /// <exception cref="ArgumentException">The dimensions differ.</exception>
    public float MaxSim(MultiVectorEmbedding document)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (document.Dimensions != Dimensions)
            throw new ArgumentException($"The document's vectors have {document.Dimensions} dimensions, the query's {Dimensions}.", nameof(document));
        return LateInteraction.MaxSim(ToOutput(), document.ToOutput());
    }
}
