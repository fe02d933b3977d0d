namespace TokenEmbed;

/// <summary>The result for one pair of <see cref="Llm.Score(IReadOnlyList{string}, IReadOnlyList{string}, PoolingParams?)"/>.</summary>
public sealed class ScoringRequestOutput
{
    /// <summary>Creates the output.</summary>
    /// <param name="outputs">The score.</param>
    public ScoringRequestOutput(ScoringOutput outputs) => Outputs = outputs;

    /// <summary>The score.</summary>
    public ScoringOutput Outputs { get; }
}
