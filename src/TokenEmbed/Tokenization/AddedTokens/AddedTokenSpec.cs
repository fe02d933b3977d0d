namespace TokenEmbed.Tokenization;

/// <summary>An added token as declared in <c>tokenizer.json</c> (<c>added_tokens</c>) or <c>tokenizer_config.json</c>.</summary>
/// <param name="Content">The literal text.</param>
/// <param name="Id">The id the file states (informational: the effective id is computed as Hugging Face does).</param>
/// <param name="Special">Whether it is a special token.</param>
/// <param name="Normalized">Whether it is matched in the normalized text (true) or the raw text (false).</param>
/// <param name="Lstrip">Whether the whitespace on its left is absorbed into the match.</param>
/// <param name="Rstrip">Whether the whitespace on its right is absorbed into the match.</param>
/// <param name="SingleWord">Whether it only matches when not inside a word.</param>
internal sealed record AddedTokenSpec(
    string Content,
    int? Id,
    bool Special,
    bool Normalized,
    bool Lstrip = false,
    bool Rstrip = false,
    bool SingleWord = false);
