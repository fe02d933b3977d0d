using TokenEmbed.Loading;

namespace TokenEmbed.Models.Bert;

/// <summary>The BertConfig fields the encoder uses, with transformers' defaults (<c>models/bert/configuration_bert.py</c>).</summary>
internal sealed record BertConfig(
    int VocabSize, int HiddenSize, int NumHiddenLayers, int NumAttentionHeads, int IntermediateSize,
    string HiddenAct, int MaxPositionEmbeddings, int TypeVocabSize, double LayerNormEps, int PadTokenId)
{
    /// <summary>Reads the fields from config.json.</summary>
    public static BertConfig From(HfConfig c)
    {
        var cfg = new BertConfig(
            c.GetPositiveInt("vocab_size", 30522), c.GetPositiveInt("hidden_size", 768), c.GetPositiveInt("num_hidden_layers", 12),
            c.GetPositiveInt("num_attention_heads", 12), c.GetPositiveInt("intermediate_size", 3072), c.GetString("hidden_act", "gelu")!,
            c.GetPositiveInt("max_position_embeddings", 512), c.GetPositiveInt("type_vocab_size", 2), c.GetDouble("layer_norm_eps", 1e-12),
            c.GetInt("pad_token_id", 0));
        if (cfg.HiddenSize % cfg.NumAttentionHeads != 0)
            throw new ModelLoadException($"'{c.FilePath}': hidden_size {cfg.HiddenSize} is not a multiple of num_attention_heads {cfg.NumAttentionHeads}.", c.FilePath);
        var pet = c.GetString("position_embedding_type", "absolute");
        if (pet != "absolute")
            throw new ModelLoadException($"'{c.FilePath}': position_embedding_type '{pet}' is not supported (only 'absolute').", c.FilePath);
        return cfg;
    }
}
