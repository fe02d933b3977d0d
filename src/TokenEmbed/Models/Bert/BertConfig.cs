using TokenEmbed.Loading;

namespace TokenEmbed.Models.Bert;

/// <summary>
/// The BertConfig fields the encoder uses, with transformers' defaults (<c>models/bert/configuration_bert.py</c>;
/// <c>RobertaConfig</c> / <c>XLMRobertaConfig</c> differ only in <c>pad_token_id</c> = 1 and <c>vocab_size</c>).
/// </summary>
internal sealed record BertConfig(
    int VocabSize, int HiddenSize, int NumHiddenLayers, int NumAttentionHeads, int IntermediateSize,
    string HiddenAct, int MaxPositionEmbeddings, int TypeVocabSize, double LayerNormEps, int PadTokenId,
    BertPositions Positions = BertPositions.Absolute)
{
    /// <summary>Reads a BERT config.json.</summary>
    public static BertConfig From(HfConfig c) => Read(c, defaultVocab: 30522, defaultPad: 0, BertPositions.Absolute);

    /// <summary>Reads a RoBERTa (<paramref name="defaultVocab"/> 50265) or XLM-RoBERTa (30522) config.json: padding-aware positions.</summary>
    public static BertConfig FromRoberta(HfConfig c, int defaultVocab)
    {
        var cfg = Read(c, defaultVocab, defaultPad: 1, BertPositions.PaddingOffset);
        if (cfg.PadTokenId < 0 || cfg.PadTokenId >= cfg.MaxPositionEmbeddings - 1)
            throw new ModelLoadException(
                $"'{c.FilePath}': pad_token_id {cfg.PadTokenId} leaves no positions in a table of max_position_embeddings {cfg.MaxPositionEmbeddings} " +
                "(RoBERTa positions start at pad_token_id + 1).", c.FilePath);
        return cfg;
    }

    private static BertConfig Read(HfConfig c, int defaultVocab, int defaultPad, BertPositions positions)
    {
        var cfg = new BertConfig(
            c.GetPositiveInt("vocab_size", defaultVocab), c.GetPositiveInt("hidden_size", 768), c.GetPositiveInt("num_hidden_layers", 12),
            c.GetPositiveInt("num_attention_heads", 12), c.GetPositiveInt("intermediate_size", 3072), c.GetString("hidden_act", "gelu")!,
            c.GetPositiveInt("max_position_embeddings", 512), c.GetPositiveInt("type_vocab_size", 2), c.GetEps("layer_norm_eps", 1e-12),
            c.GetInt("pad_token_id", defaultPad), positions);
        if (cfg.HiddenSize % cfg.NumAttentionHeads != 0)
            throw new ModelLoadException($"'{c.FilePath}': hidden_size {cfg.HiddenSize} is not a multiple of num_attention_heads {cfg.NumAttentionHeads}.", c.FilePath);
        var pet = c.GetString("position_embedding_type", "absolute");
        if (pet != "absolute")
            throw new ModelLoadException($"'{c.FilePath}': position_embedding_type '{pet}' is not supported (only 'absolute').", c.FilePath);
        return cfg;
    }
}
