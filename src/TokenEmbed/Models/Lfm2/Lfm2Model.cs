using TokenEmbed.Loading;
using TokenEmbed.Models.Decoder;

namespace TokenEmbed.Models.Lfm2;

// Port of transformers 5.17 models/lfm2/modeling_lfm2.py (Lfm2Model) over the shared decoder stack: per layer_types
// either causal GQA attention with per-head q_layernorm / k_layernorm (out_proj, no biases) or the gated short
// convolution (Lfm2ShortConv); SwiGLU feed_forward w1/w3/w2 with Lfm2MLP's width rule; the final RMSNorm is called
// embedding_norm although it runs at the END. Config mapping from models/lfm2/configuration_lfm2.py.

/// <summary><c>Lfm2Model</c> (LFM2, and the backbone of LFM2-ColBERT).</summary>
internal sealed class Lfm2Model(HfConfig config) : DecoderModel(ReadSpec(config), "Lfm2Model", Mixers(config))
{
    private static readonly DecoderNames Names = new("operator_norm", "ffn_norm", "self_attn", "feed_forward", "embedding_norm",
        "out_proj", "q_layernorm", "k_layernorm", "w1", "w3", "w2");

    /// <summary>The decoder options config.json describes.</summary>
    public static DecoderSpec ReadSpec(HfConfig c)
    {
        var hidden = c.GetPositiveInt("hidden_size", 2560);
        var heads = c.GetPositiveInt("num_attention_heads", 32);
        if (hidden % heads != 0)
            throw new ModelLoadException($"'{c.FilePath}': hidden_size {hidden} is not a multiple of num_attention_heads {heads}.", c.FilePath);
        var numLayers = c.GetPositiveInt("num_hidden_layers", 32);
        return new DecoderSpec(
            Names,
            VocabSize: c.GetPositiveInt("vocab_size", 65536),
            HiddenSize: hidden,
            IntermediateSize: FeedForwardWidth(c),
            NumHeads: heads,
            NumKvHeads: c.GetPositiveInt("num_key_value_heads", 8),
            HeadDim: hidden / heads,
            HiddenAct: "silu",
            MaxPositions: c.GetPositiveInt("max_position_embeddings", 128000),
            NormEps: c.GetEps("norm_eps", 1e-5),
            InverseFrequencies: RopeConfig.InverseFrequencies(c, hidden / heads, 1000000.0),
            NumLayers: numLayers,
            QkNorm: true).Validate(c);
    }

    /// <summary>Per <c>layer_types</c>: attention (the shared decoder's) or the gated short convolution under <c>conv</c>.</summary>
    private static DecoderMixerFactory Mixers(HfConfig c)
    {
        var kernel = c.GetPositiveInt("conv_L_cache", 3);
        var bias = c.GetBool("conv_bias", false);
        var attention = AttentionLayers(c, c.GetPositiveInt("num_hidden_layers", 32));
        return (spec, i) => attention[i] ? AttentionOnly(spec, i) : (Lfm2ShortConv.ModuleName, new Lfm2ShortConv(spec.HiddenSize, kernel, bias));
    }

    /// <summary>
    /// <c>Lfm2MLP</c>'s width: <c>block_ff_dim</c> overrides <c>intermediate_size</c>; with <c>block_auto_adjust_ff_dim</c>
    /// it becomes <c>int(2·I/3)</c>, then, when <c>block_ffn_dim_multiplier</c> is not null, <c>int(mult·I)</c> rounded up
    /// to a multiple of <c>block_multiple_of</c> (LFM2-350M: 6656 → 4437 → 4608).
    /// </summary>
    public static int FeedForwardWidth(HfConfig c)
    {
        var width = c.Has("block_ff_dim") ? c.GetPositiveInt("block_ff_dim", 0) : c.GetPositiveInt("intermediate_size", 12288);
        if (!c.GetBool("block_auto_adjust_ff_dim", true)) return width;
        width = (int)(2.0 * width / 3);
        if (c.IsExplicitNull("block_ffn_dim_multiplier")) return width;
        var multiplier = c.GetDouble("block_ffn_dim_multiplier", 1.0);
        var multiple = c.GetPositiveInt("block_multiple_of", 256);
        width = (int)(multiplier * width);
        width = multiple * ((width + multiple - 1) / multiple);
        if (width <= 0) throw new ModelLoadException($"'{c.FilePath}': the feed-forward width computed from block_ffn_dim_multiplier is {width}.", c.FilePath);
        return width;
    }

    /// <summary><c>layer_types</c> names: true = attention, false = short convolution.</summary>
    private static readonly Dictionary<string, bool> LayerTypeNames = new(StringComparer.Ordinal)
    {
        ["full_attention"] = true,
        ["conv"] = false,
    };

    /// <summary>Which layers are attention layers (the others are short convolutions).</summary>
    private static bool[] AttentionLayers(HfConfig c, int numLayers)
    {
        if (c.GetPerLayerList("layer_types", numLayers, LayerTypeNames) is { } kinds) return kinds;
        // Lfm2Config.__post_init__: built from full_attn_idxs; with neither field every layer is attention.
        var full = c.GetIntList("full_attn_idxs");
        return Enumerable.Range(0, numLayers).Select(i => full == null || full.Contains(i)).ToArray();
    }
}
