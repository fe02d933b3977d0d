namespace TokenEmbed.Tokenization;

/// <summary>Text to token ids, as the model's Hugging Face tokenizer does it.</summary>
internal abstract class TextTokenizer
{
    /// <summary>
    /// Token ids for <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the post-processor template
    /// (e.g. <c>[CLS] $A [SEP]</c>) is applied. Truncation and padding are not applied.
    /// </summary>
    public abstract int[] Encode(string text, bool addSpecialTokens = true);

    /// <summary>Applies the post-processor template to ids encoded without special tokens (used after truncation).</summary>
    public abstract int[] ApplyPostProcessor(ReadOnlySpan<int> ids);

    /// <summary>How many special tokens the post-processor adds to a single sequence (2 for BERT).</summary>
    public abstract int NumSpecialTokensToAdd { get; }

    /// <summary>The padding token's id, when the tokenizer files name one.</summary>
    public abstract int? PadTokenId { get; }

    /// <summary>The id of a token (added tokens first, then the model vocabulary), or null.</summary>
    public abstract int? TokenToId(string token);

    /// <summary>The token of an id (added tokens first, then the model vocabulary), or null.</summary>
    public abstract string? IdToToken(int id);

    /// <summary>One more than the largest id the tokenizer can produce (model vocabulary and added tokens).</summary>
    public abstract int VocabSize { get; }
}
