namespace TokenEmbed;

/// <summary>One input: a text, or token ids (vLLM's <c>TokensPrompt</c>) that skip the tokenizer.</summary>
public sealed class Prompt
{
    private Prompt(string? text, int[]? tokenIds)
    {
        Text = text;
        TokenIds = tokenIds;
    }

    /// <summary>The text, or <see langword="null"/> for a token-id prompt.</summary>
    public string? Text { get; }

    /// <summary>The token ids, or <see langword="null"/> for a text prompt.</summary>
    public IReadOnlyList<int>? TokenIds { get; }

    /// <summary>A text prompt.</summary>
    /// <param name="text">The text to tokenize; must not be null.</param>
    public static Prompt FromText(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), null);

    /// <summary>A token-id prompt, used as given (no special tokens are added).</summary>
    /// <param name="tokenIds">The ids; copied.</param>
    public static Prompt FromTokenIds(IReadOnlyList<int> tokenIds)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        return new Prompt(null, tokenIds.ToArray());
    }

    /// <summary>A text prompt.</summary>
    /// <param name="text">The text to tokenize.</param>
    public static implicit operator Prompt(string text) => FromText(text);

    /// <inheritdoc />
    public override string ToString() => Text ?? $"<{TokenIds!.Count} token ids>";
}
