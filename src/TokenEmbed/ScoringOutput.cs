namespace TokenEmbed;

/// <summary>A relevance score.</summary>
public sealed class ScoringOutput
{
    /// <summary>Creates the output.</summary>
    /// <param name="score">The score.</param>
    public ScoringOutput(float score) => Score = score;

    /// <summary>The late-interaction (MaxSim) score, or the cosine similarity for single-vector models.</summary>
    public float Score { get; }
}
