using TokenEmbed.Loading;

namespace TokenEmbed.Models.Decoder;

/// <summary>A family's configuration-class defaults for the fields older hub configs may omit.</summary>
internal sealed record LlamaLikeDefaults(int VocabSize, int HiddenSize, int IntermediateSize, int NumLayers, int NumHeads, int MaxPositions, double RmsNormEps, double RopeTheta);

/// <summary>Where a Llama-style family's projection biases come from.</summary>
internal enum LlamaLikeBiases
{
    /// <summary>Llama, Qwen3: <c>attention_bias</c> adds biases to q/k/v/o, <c>mlp_bias</c> to gate/up/down (both default false).</summary>
    FromConfig,
    /// <summary>Qwen2: q/k/v always have biases, o_proj and the MLP never.</summary>
    QkvOnly,
}

/// <summary>
/// Reads the config.json fields Llama, Qwen2 and Qwen3 share (<c>configuration_llama.py</c>, <c>configuration_qwen2.py</c>,
/// <c>configuration_qwen3.py</c> in transformers 5.17) into a <see cref="DecoderSpec"/>.
/// </summary>
internal static class LlamaLikeConfig
{
    private static readonly Dictionary<string, bool> FullAttentionOnly = new(StringComparer.Ordinal) { ["full_attention"] = true };

    /// <summary>The spec of a Llama-style family; <paramref name="qkNorm"/>: per-head q/k RMSNorm before RoPE (Qwen3).</summary>
    public static DecoderSpec Read(HfConfig c, LlamaLikeDefaults d, bool qkNorm, LlamaLikeBiases biases)
    {
        var hidden = c.GetPositiveInt("hidden_size", d.HiddenSize);
        var heads = c.GetPositiveInt("num_attention_heads", d.NumHeads);
        var kvHeads = c.GetPositiveInt("num_key_value_heads", heads);
        int headDim;
        if (c.Has("head_dim")) headDim = c.GetPositiveInt("head_dim", 0);
        else if (hidden % heads == 0) headDim = hidden / heads;
        else throw new ModelLoadException($"'{c.FilePath}': hidden_size {hidden} is not a multiple of num_attention_heads {heads} and head_dim is not given.", c.FilePath);
        var layers = c.GetPositiveInt("num_hidden_layers", d.NumLayers);

        if (c.GetBool("use_sliding_window", false))
            throw new ModelLoadException($"'{c.FilePath}': field 'use_sliding_window' is true; sliding-window attention is not supported for this family.", c.FilePath);
        // Only full attention: sliding layers (use_sliding_window) are not supported.
        c.GetPerLayerList("layer_types", layers, FullAttentionOnly);

        var attentionBias = biases == LlamaLikeBiases.FromConfig && c.GetBool("attention_bias", false);
        var mlpBias = biases == LlamaLikeBiases.FromConfig && c.GetBool("mlp_bias", false);
        return new DecoderSpec(
            DecoderNames.Llama,
            VocabSize: c.GetPositiveInt("vocab_size", d.VocabSize),
            HiddenSize: hidden,
            IntermediateSize: c.GetPositiveInt("intermediate_size", d.IntermediateSize),
            NumHeads: heads,
            NumKvHeads: kvHeads,
            HeadDim: headDim,
            HiddenAct: c.GetString("hidden_act", "silu")!,
            MaxPositions: c.GetPositiveInt("max_position_embeddings", d.MaxPositions),
            NormEps: c.GetEps("rms_norm_eps", d.RmsNormEps),
            InverseFrequencies: RopeConfig.InverseFrequencies(c, headDim, d.RopeTheta),
            NumLayers: layers,
            QkNorm: qkNorm, QkvBias: attentionBias || biases == LlamaLikeBiases.QkvOnly, OutputBias: attentionBias, MlpBias: mlpBias).Validate(c);
    }
}
