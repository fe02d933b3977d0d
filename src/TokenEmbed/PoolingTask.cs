namespace TokenEmbed;

/// <summary>What <see cref="Llm.Encode(Prompt, PoolingTask, PoolingParams?)"/> returns per prompt (vLLM's <c>pooling_task</c>).</summary>
public enum PoolingTask
{
    /// <summary>One vector per prompt: the model's sentence-transformers pooling, else CLS (encoders) or LAST token (decoders).</summary>
    Embed,

    /// <summary>One vector per prompt token, special tokens included (multi-vector / ColBERT late interaction).</summary>
    TokenEmbed,
}
