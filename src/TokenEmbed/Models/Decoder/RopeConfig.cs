using TokenEmbed.Loading;
using TokenEmbed.Models.Layers;

namespace TokenEmbed.Models.Decoder;

// Reads RoPE settings the way transformers 5.17's RotaryEmbeddingConfigMixin (modeling_rope_utils.py:
// convert_rope_params_to_dict / standardize_rope_params) merges them: a `rope_parameters` (5.x) or `rope_scaling`
// (older) object wins, then a top-level `rope_theta`, then the class default.

/// <summary>The inverse frequencies a decoder's config.json asks for.</summary>
internal static class RopeConfig
{
    /// <summary>
    /// <c>inv_freq</c> (float32, [<paramref name="headDim"/>/2]) from <c>rope_parameters</c> or the older top-level
    /// <c>rope_theta</c> + <c>rope_scaling</c>. Supported types: <c>default</c> and <c>llama3</c>; others are a
    /// <see cref="ModelLoadException"/> naming the field.
    /// </summary>
    public static float[] InverseFrequencies(HfConfig config, int headDim, double defaultTheta)
    {
        var section = config.GetSection("rope_parameters") ?? config.GetSection("rope_scaling");
        var theta = section?.GetDouble("rope_theta", double.NaN) is { } t && !double.IsNaN(t) ? t : config.GetDouble("rope_theta", defaultTheta);
        if (!(theta > 0))
            throw new ModelLoadException($"'{config.FilePath}': rope_theta must be positive, found {theta}.", config.FilePath);
        var field = config.GetSection("rope_parameters") != null ? "rope_parameters" : "rope_scaling";
        var type = section?.GetString("rope_type", null) ?? section?.GetString("type", null) ?? "default";
        switch (type)
        {
            case "default":
                return Rotary.DefaultInverseFrequencies(headDim, theta);
            case "llama3":
                double Required(string name) => section!.GetDouble(name, double.NaN) is var v && v > 0 ? v
                    : throw new ModelLoadException($"'{config.FilePath}': field '{field}.{name}' must be a positive number for rope_type 'llama3'.", config.FilePath);
                var factor = Required("factor");
                var low = Required("low_freq_factor");
                var high = Required("high_freq_factor");
                var original = Required("original_max_position_embeddings");
                if (high <= low)
                    throw new ModelLoadException($"'{config.FilePath}': field '{field}.high_freq_factor' ({high}) must be larger than low_freq_factor ({low}).", config.FilePath);
                return Rotary.Llama3InverseFrequencies(headDim, theta, factor, low, high, original);
            default:
                throw new ModelLoadException(
                    $"'{config.FilePath}': field '{field}.rope_type' is '{type}', which is not supported (supported: default, llama3).", config.FilePath);
        }
    }
}
