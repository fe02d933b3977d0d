namespace TokenEmbed;

/// <summary>Per-request pooling settings, as vLLM's <c>PoolingParams</c>.</summary>
public sealed class PoolingParams
{
    /// <summary>
    /// Matryoshka dimensions: keep the first <c>Dimensions</c> components of each vector (after any projection,
    /// before normalizing). <see langword="null"/> keeps them all.
    /// </summary>
    public int? Dimensions { get; init; }

    /// <summary>L2-normalize each vector (eps 1e-12). <see langword="null"/> means the default, <see langword="true"/>.</summary>
    public bool? Normalize { get; init; }

    /// <summary>
    /// Truncation: <see langword="null"/> = none (a prompt longer than the model's maximum is an error);
    /// <c>-1</c> = truncate to the model's maximum length; <c>k &gt; 0</c> = keep the last <c>k</c> tokens.
    /// Text prompts keep their special tokens (the content is truncated from the left, as a Hugging Face
    /// tokenizer with <c>truncation_side="left"</c> does); token-id prompts keep their last <c>k</c> ids.
    /// </summary>
    public int? TruncatePromptTokens { get; init; }

    /// <summary>
    /// <see cref="TokenEmbed.InputType.Query"/> or <see cref="TokenEmbed.InputType.Document"/> encode text the way PyLate does,
    /// with the folder's settings (<c>config_sentence_transformers.json</c>, colbert-ai's <c>artifact.metadata</c>, else
    /// PyLate's defaults with <c>[unused0]</c> / <c>[unused1]</c> prefixes). <see langword="null"/> or
    /// <see cref="TokenEmbed.InputType.Plain"/>: vLLM's plain encoding. For <c>Score</c>, <see cref="TokenEmbed.InputType.Query"/>
    /// means "the first side are queries, the second documents".
    /// </summary>
    public InputType? InputType { get; init; }
}
