namespace TokenEmbed;

/// <summary>A prompt has more tokens than the model accepts and no truncation was requested.</summary>
public sealed class PromptTooLongException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="tokenCount">The prompt's token count.</param>
    /// <param name="maxTokens">The model's maximum.</param>
    /// <param name="promptIndex">The prompt's index in the request.</param>
    public PromptTooLongException(int tokenCount, int maxTokens, int promptIndex)
        : base($"Prompt {promptIndex} has {tokenCount} tokens, more than the model's maximum of {maxTokens}. " +
               "Shorten it or set PoolingParams.TruncatePromptTokens (-1 truncates to the maximum).")
    {
        TokenCount = tokenCount;
        MaxTokens = maxTokens;
        PromptIndex = promptIndex;
    }

    /// <summary>The prompt's token count.</summary>
    public int TokenCount { get; }

    /// <summary>The model's maximum number of tokens.</summary>
    public int MaxTokens { get; }

    /// <summary>The prompt's index in the request.</summary>
    public int PromptIndex { get; }
}
