namespace TokenEmbed;

/// <summary>
/// How a prompt is encoded (<see cref="PoolingParams.InputType"/>): as vLLM does (plain), or the way PyLate's
/// <c>ColBERT.encode</c> encodes queries and documents (prefix token, query expansion, punctuation skiplist).
/// </summary>
public enum InputType
{
    /// <summary>vLLM's behaviour: the text's tokens as they are, every vector returned.</summary>
    Plain,

    /// <summary>
    /// A PyLate query: the query prefix token after the first token, truncated to <c>query_length</c>, padded to it with
    /// the mask token (decoders: EOS) that is attended only when <c>attend_to_expansion_tokens</c>; every vector returned.
    /// </summary>
    Query,

    /// <summary>
    /// A PyLate document: the document prefix token after the first token, truncated to <c>document_length</c>; vectors of
    /// skiplist tokens (punctuation by default) dropped.
    /// </summary>
    Document,
}
