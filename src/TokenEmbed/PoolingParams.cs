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

    /// <summary>
    /// Token pooling of documents (PyLate's <c>pool_factor</c>): a <see cref="TokenEmbed.InputType.Document"/> TokenEmbed
    /// output keeps about one vector per <c>PoolFactor</c> tokens, the means of clusters of similar vectors (Ward linkage over
    /// cosine distances, as PyLate's <c>pool_embeddings_hierarchical</c> with scipy). Applied after normalization; the means
    /// are not normalized again (as in PyLate). <see langword="null"/> or 1: no pooling. Needs
    /// <see cref="InputType"/> = Document (or Query for <c>Score</c>, where it pools the documents' side).
    /// </summary>
    public int? PoolFactor { get; init; }

    /// <summary>
    /// With <see cref="PoolFactor"/>: how many leading vectors are kept out of the clustering (PyLate's
    /// <c>protected_tokens</c>; <see langword="null"/> means 1, the [CLS] vector). They come after the pooled vectors in the
    /// output, as in PyLate.
    /// </summary>
    public int? ProtectedTokens { get; init; }
}
