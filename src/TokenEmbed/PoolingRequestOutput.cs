namespace TokenEmbed;

/// <summary>The result for one prompt of <see cref="Llm.Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</summary>
public sealed class PoolingRequestOutput
{
    /// <summary>Creates the output.</summary>
    /// <param name="prompt">The prompt text (null for token-id prompts).</param>
    /// <param name="promptTokenIds">The token ids the model saw.</param>
    /// <param name="outputs">The pooled data.</param>
    public PoolingRequestOutput(string? prompt, IReadOnlyList<int> promptTokenIds, PoolingOutput outputs)
    {
        Prompt = prompt;
        PromptTokenIds = promptTokenIds;
        Outputs = outputs;
    }

    /// <summary>The prompt text, or <see langword="null"/> for a token-id prompt.</summary>
    public string? Prompt { get; }

    /// <summary>The token ids the model saw (after truncation, special tokens included).</summary>
    public IReadOnlyList<int> PromptTokenIds { get; }

    /// <summary>The pooled data.</summary>
    public PoolingOutput Outputs { get; }
}
