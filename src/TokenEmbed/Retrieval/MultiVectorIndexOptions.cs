namespace TokenEmbed.Retrieval;

/// <summary>How a <see cref="MultiVectorIndex"/> searches.</summary>
public sealed class MultiVectorIndexOptions
{
    /// <summary>Threads a search may use over the documents; null = all cores.</summary>
    public int? MaxDegreeOfParallelism { get; init; }
}
