using TokenEmbed.Loading;

namespace TokenEmbed.Models.ModernBert;

/// <summary>The attention pattern of one ModernBERT layer (config.json <c>layer_types</c>).</summary>
internal enum ModernBertLayerType
{
    /// <summary><c>full_attention</c>: bidirectional, key padding only (RoPE theta <c>global_rope_theta</c>).</summary>
    Full,
    /// <summary><c>sliding_attention</c>: key padding and <c>|q − k| &lt;= local_attention / 2</c> (RoPE theta <c>local_rope_theta</c>).</summary>
    Sliding,
}

/// <summary>
/// The ModernBertConfig fields the encoder uses, with transformers 5.17's defaults
/// (<c>models/modernbert/configuration_modernbert.py</c>). Both spellings load: the 5.x one (<c>layer_types</c>,
/// per-layer-type <c>rope_parameters</c>) and the hub one (<c>global_attn_every_n_layers</c>,
/// <c>global_rope_theta</c>, <c>local_rope_theta</c>).
/// </summary>
internal sealed record ModernBertConfig(
    int VocabSize, int HiddenSize, int IntermediateSize, int NumHiddenLayers, int NumAttentionHeads,
    string HiddenActivation, int MaxPositionEmbeddings, double NormEps, bool NormBias, bool AttentionBias, bool MlpBias,
    int LocalAttention, IReadOnlyList<ModernBertLayerType> LayerTypes, double GlobalRopeTheta, double LocalRopeTheta)
{
    /// <summary>hidden_size / num_attention_heads.</summary>
    public int HeadDim => HiddenSize / NumAttentionHeads;

    /// <summary>The half window of sliding layers (transformers' <c>config.sliding_window</c> = local_attention // 2).</summary>
    public int HalfWindow => LocalAttention / 2;

    /// <summary>The RoPE base of a layer type.</summary>
    public double RopeTheta(ModernBertLayerType type) => type == ModernBertLayerType.Full ? GlobalRopeTheta : LocalRopeTheta;

    /// <summary>Reads the fields from config.json; invalid values are <see cref="ModelLoadException"/>s naming the field.</summary>
    public static ModernBertConfig From(HfConfig c)
    {
        var layers = c.GetPositiveInt("num_hidden_layers", 22);
        var hidden = c.GetPositiveInt("hidden_size", 768);
        var heads = c.GetPositiveInt("num_attention_heads", 12);
        if (hidden % heads != 0)
            throw new ModelLoadException($"'{c.FilePath}': hidden_size {hidden} is not a multiple of num_attention_heads {heads}.", c.FilePath);
        if (hidden / heads % 2 != 0)
            throw new ModelLoadException($"'{c.FilePath}': the head size {hidden / heads} (hidden_size / num_attention_heads) must be even for RoPE.", c.FilePath);

        var cfg = new ModernBertConfig(
            c.GetPositiveInt("vocab_size", 50368), hidden, c.GetPositiveInt("intermediate_size", 1152), layers, heads,
            c.GetString("hidden_activation", "gelu")!, c.GetPositiveInt("max_position_embeddings", 8192), c.GetEps("norm_eps", 1e-5),
            c.GetBool("norm_bias", false), c.GetBool("attention_bias", false), c.GetBool("mlp_bias", false),
            c.GetPositiveInt("local_attention", 128), ReadLayerTypes(c, layers),
            RopeTheta(c, "full_attention", "global_rope_theta", 160_000.0), RopeTheta(c, "sliding_attention", "local_rope_theta", 10_000.0));
        Layers.Activations.Get(cfg.HiddenActivation, c.FilePath); // an unknown activation fails at load, naming it
        return cfg;
    }

    private static readonly Dictionary<string, ModernBertLayerType> LayerTypeNames = new(StringComparer.Ordinal)
    {
        ["full_attention"] = ModernBertLayerType.Full,
        ["sliding_attention"] = ModernBertLayerType.Sliding,
    };

    // layer_types wins; otherwise every global_attn_every_n_layers-th layer (from layer 0) is global (ModernBertConfig.__init__).
    private static ModernBertLayerType[] ReadLayerTypes(HfConfig c, int layers)
    {
        if (c.GetPerLayerList("layer_types", layers, LayerTypeNames) is { } types) return types;
        var every = c.GetPositiveInt("global_attn_every_n_layers", 3);
        return Enumerable.Range(0, layers).Select(i => i % every == 0 ? ModernBertLayerType.Full : ModernBertLayerType.Sliding).ToArray();
    }

    // rope_parameters.<type>.rope_theta wins, then the hub's global_rope_theta / local_rope_theta, then the class default
    // (ModernBertConfig.convert_rope_params_to_dict). Only the "default" RoPE type is supported.
    private static double RopeTheta(HfConfig c, string layerType, string legacyName, double fallback)
    {
        if (c.Has("rope_scaling"))
            throw new ModelLoadException($"'{c.FilePath}': field 'rope_scaling' is not supported for ModernBERT (only default RoPE).", c.FilePath);
        var theta = c.GetDouble(legacyName, fallback);
        if (c.GetSection("rope_parameters")?.GetSection(layerType) is { } p)
        {
            var type = p.GetString("rope_type", "default");
            if (type != "default")
                throw new ModelLoadException(
                    $"'{c.FilePath}': field '{p.FieldPath("rope_type")}' is '{type}'; only 'default' RoPE is supported for ModernBERT.", c.FilePath);
            theta = p.GetDouble("rope_theta", theta);
        }
        if (!(theta > 0) || double.IsInfinity(theta))
            throw new ModelLoadException($"'{c.FilePath}': the RoPE theta of {layerType} layers must be positive, found {theta}.", c.FilePath);
        return theta;
    }
}
