namespace TokenEmbed.Retrieval;

/// <summary>How a <see cref="MultiVectorIndex"/> stores and searches its documents.</summary>
public sealed class MultiVectorIndexOptions
{
    /// <summary>Threads a search may use over the documents; null = all cores.</summary>
    public int? MaxDegreeOfParallelism { get; init; }

    /// <summary>
    /// How token vectors are stored, in memory and in the saved file: <see cref="VectorPrecision.Float32"/> (default) or
    /// <see cref="VectorPrecision.Float16"/> (half the memory; scores change by about 1e-3 for normalized vectors). Ignored by
    /// <see cref="MultiVectorIndex.Load"/>, which keeps the file's precision.
    /// </summary>
    public VectorPrecision Precision { get; init; } = VectorPrecision.Float32;

    /// <summary>
    /// The PLAID-style candidate stage for large corpora (k-means centroids over the token vectors, inverted lists,
    /// centroid interaction, exact re-ranking of the best candidates); null = exact search over every document.
    /// </summary>
    public PlaidOptions? Plaid { get; init; }
}

/// <summary>How token vectors are stored.</summary>
public enum VectorPrecision
{
    /// <summary>IEEE single precision, 4 bytes a value.</summary>
    Float32,

    /// <summary>IEEE half precision, 2 bytes a value (finite values up to 65504).</summary>
    Float16,
}

/// <summary>
/// The PLAID-style candidate stage (Santhanam et al., "PLAID", 2022): every token vector is assigned its nearest of a set of
/// centroids (spherical k-means over a sample of the vectors); a query probes each of its vectors' nearest centroids, the
/// documents in those centroids' inverted lists are scored by centroid interaction (Σ over query vectors of the best
/// query–centroid score among the document's centroids), and the best <see cref="Candidates"/> are re-ranked exactly.
/// </summary>
/// <remarks>
/// The centroids are trained on the first search (or <see cref="MultiVectorIndex.Save"/>), and again on a later search once
/// the index holds twice the token vectors it was trained on; documents added in between are assigned to the existing
/// centroids. A saved index keeps its centroids.
/// </remarks>
public sealed class PlaidOptions
{
    /// <summary>The number of centroids; null = a power of two near 4·√(token vectors), at least 16 and at most the token count.</summary>
    public int? Centroids { get; init; }

    /// <summary>Centroids probed per query vector (PLAID's <c>ncells</c>); default 4.</summary>
    public int Probes { get; init; } = 4;

    /// <summary>Documents re-ranked by exact MaxSim after centroid interaction (PLAID's <c>ndocs</c>); at least k; default 256.</summary>
    public int Candidates { get; init; } = 256;

    /// <summary>
    /// PLAID's centroid-score pruning: a document's centroid counts in centroid interaction only when some query vector scores
    /// at least this against it (0.45 suits ColBERTv2-style normalized vectors). Null (default): no pruning.
    /// </summary>
    public float? CentroidScoreThreshold { get; init; }

    /// <summary>k-means iterations; default 8.</summary>
    public int KMeansIterations { get; init; } = 8;

    /// <summary>The seed of the k-means sample and initialization (training is deterministic for a given seed and corpus).</summary>
    public int Seed { get; init; }
}
