using TokenEmbed.Loading;

namespace TokenEmbed.Models.Decoder;

/// <summary>A family's configuration-class defaults for the fields older hub configs may omit.</summary>
internal sealed record LlamaLikeDefaults(int VocabSize, int HiddenSize, int IntermediateSize, int NumLayers, int NumHeads, int MaxPositions, double RmsNormEps, double RopeTheta);

/// <summary>Per-family switches of the Llama-style attention block.</summary>
internal sealed record LlamaLikeOptions(bool QkNorm, bool QkvBias, bool OutputBias, bool MlpBias);

/// <summary>
/// Reads the config.json fields Llama, Qwen2 and Qwen3 share (<c>configuration_llama.py</c>, <c>configuration_qwen2.py</c>,
/// <c>configuration_qwen3.py</c> in transformers 5.17) into a <see cref="DecoderSpec"/>.
/// </summary>
internal static class LlamaLikeConfig
{
    public static DecoderSpec Read(HfConfig c, LlamaLikeDefaults d, Func<HfConfig, LlamaLikeOptions> options)
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
        if (c.GetStringList("layer_types") is { } types)
        {
            if (types.Count != layers)
                throw new ModelLoadException($"'{c.FilePath}': field 'layer_types' has {types.Count} entries for {layers} layers.", c.FilePath);
            if (types.FirstOrDefault(t => t != "full_attention") is { } bad)
                throw new ModelLoadException($"'{c.FilePath}': field 'layer_types' has '{bad}'; only 'full_attention' is supported for this family.", c.FilePath);
        }

        var o = options(c);
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
            NormEps: c.GetDouble("rms_norm_eps", d.RmsNormEps),
            InverseFrequencies: RopeConfig.InverseFrequencies(c, headDim, d.RopeTheta),
            Layers: Enumerable.Repeat(DecoderLayerKind.Attention, layers).ToArray(),
            QkNorm: o.QkNorm, QkvBias: o.QkvBias, OutputBias: o.OutputBias, MlpBias: o.MlpBias).Validate(c);
    }
}
