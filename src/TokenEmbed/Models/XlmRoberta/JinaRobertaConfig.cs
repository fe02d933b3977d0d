using TokenEmbed.Loading;

namespace TokenEmbed.Models.XlmRoberta;

/// <summary>
/// The <c>XLMRobertaFlashConfig</c> fields (jinaai/xlm-roberta-flash-implementation <c>configuration_xlm_roberta.py</c>)
/// that the rotary XLM-R encoder of jina-colbert-v2 / jina-embeddings-v3 uses.
/// </summary>
/// <param name="VocabSize">Rows of the word table (rounded up to <c>pad_vocab_size_multiple</c>, as upstream does).</param>
/// <param name="HiddenSize">Model width.</param>
/// <param name="NumHiddenLayers">Blocks.</param>
/// <param name="NumAttentionHeads">Heads.</param>
/// <param name="IntermediateSize">MLP width.</param>
/// <param name="HiddenAct">A GELU variant (upstream asserts one).</param>
/// <param name="TypeVocabSize">Token type rows; 0 = no token type table.</param>
/// <param name="LayerNormEps">LayerNorm epsilon.</param>
/// <param name="PadTokenId">The padding id.</param>
/// <param name="MaxPositionEmbeddings">The nominal position count (no table with rotary; the length limit comes from it).</param>
/// <param name="RotaryBase"><c>rotary_emb_base</c>.</param>
/// <param name="RotaryDim"><c>rotary_emb_dim</c> (default the head dim): rotated features per head.</param>
internal sealed record JinaRobertaConfig(
    int VocabSize, int HiddenSize, int NumHiddenLayers, int NumAttentionHeads, int IntermediateSize, string HiddenAct,
    int TypeVocabSize, double LayerNormEps, int PadTokenId, int MaxPositionEmbeddings, double RotaryBase, int RotaryDim)
{
    /// <summary>The per-head width.</summary>
    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>Reads config.json; unsupported values fail naming the field.</summary>
    public static JinaRobertaConfig From(HfConfig c)
    {
        var path = c.FilePath;
        ModelLoadException Bad(string field, string why) => new($"'{path}': field '{field}' {why}", path);

        var pet = c.GetString("position_embedding_type", "rotary");
        if (pet is not ("rotary" or "rope"))
            throw Bad("position_embedding_type", $"is '{pet}'; the Jina XLM-RoBERTa encoder supports only 'rotary'.");
        var hidden = c.GetPositiveInt("hidden_size", 768);
        var heads = c.GetPositiveInt("num_attention_heads", 12);
        if (hidden % heads != 0) throw Bad("hidden_size", $"{hidden} is not a multiple of num_attention_heads {heads}.");
        var headDim = hidden / heads;

        var act = c.GetString("hidden_act", "gelu")!;
        if (act is not ("gelu" or "gelu_new" or "gelu_fast" or "gelu_pytorch_tanh"))
            throw Bad("hidden_act", $"is '{act}'; the Jina XLM-RoBERTa MLP is GELU only.");

        var vocab = c.GetPositiveInt("vocab_size", 250002);
        var multiple = c.GetPositiveInt("pad_vocab_size_multiple", 1);
        if (vocab % multiple != 0) vocab += multiple - vocab % multiple;

        var typeVocab = c.GetInt("type_vocab_size", 1);
        if (typeVocab < 0) throw Bad("type_vocab_size", $"must not be negative, found {typeVocab}.");

        var rotaryDim = c.GetPositiveInt("rotary_emb_dim", headDim);
        if (rotaryDim > headDim || rotaryDim % 2 != 0)
            throw Bad("rotary_emb_dim", $"is {rotaryDim}; it must be even and at most the head dim {headDim}.");
        var fraction = c.GetDouble("rotary_emb_fraction", 1.0);
        if (fraction != 1.0)
            throw Bad("rotary_emb_fraction", $"is {fraction}; the Jina encoder reads rotary_emb_dim, and a fraction other than 1 is not supported.");
        if (c.GetBool("rotary_emb_interleaved", false))
            throw Bad("rotary_emb_interleaved", "is true; only the rotate-half (GPT-NeoX) rotary layout that Jina's checkpoints use is supported.");
        if (c.Has("rotary_emb_scale_base"))
            throw Bad("rotary_emb_scale_base", "is set; XPos-scaled rotary is not supported.");
        var theta = c.GetDouble("rotary_emb_base", 10000.0);
        if (!(theta > 0)) throw Bad("rotary_emb_base", $"must be positive, found {theta}.");

        var pad = c.GetInt("pad_token_id", 1);
        var maxPos = c.GetPositiveInt("max_position_embeddings", 8194);
        if (pad < 0 || pad >= maxPos - 1) throw Bad("pad_token_id", $"{pad} leaves no positions below max_position_embeddings {maxPos}.");

        return new JinaRobertaConfig(vocab, hidden, c.GetPositiveInt("num_hidden_layers", 12), heads, c.GetPositiveInt("intermediate_size", 3072),
            act, typeVocab, c.GetEps("layer_norm_eps", 1e-12), pad, maxPos, theta, rotaryDim);
    }
}
