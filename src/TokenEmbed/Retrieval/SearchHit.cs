namespace TokenEmbed.Retrieval;

/// <summary>One search result: a document id and its late-interaction (MaxSim) score.</summary>
/// <param name="Id">The document's id.</param>
/// <param name="Score">Σ over query vectors of the best dot product with the document's vectors.</param>
public sealed record SearchHit(string Id, float Score);
