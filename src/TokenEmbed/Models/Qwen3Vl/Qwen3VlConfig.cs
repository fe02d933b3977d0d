using TokenEmbed.Loading;
using TokenEmbed.Models.Decoder;

namespace TokenEmbed.Models.Qwen3Vl;

// Config mapping from transformers 5.17 models/qwen3_vl/configuration_qwen3_vl.py (Qwen3VLConfig, Qwen3VLTextConfig,
// Qwen3VLVisionConfig): `text_config` and `vision_config` sections, the special token ids at the top level.

/// <summary>The vision tower's shape (<c>vision_config</c>).</summary>
internal sealed record Qwen3VlVisionSpec(
    int Depth, int HiddenSize, string HiddenAct, int IntermediateSize, int NumHeads, int InChannels, int PatchSize,
    int SpatialMergeSize, int TemporalPatchSize, int OutHiddenSize, int NumPositionEmbeddings, IReadOnlyList<int> DeepStackIndexes,
    double RopeTheta)
{
    public int HeadDim => HiddenSize / NumHeads;

    /// <summary>The values of one patch row: channels · temporal patch · patch · patch.</summary>
    public int PatchValues => InChannels * TemporalPatchSize * PatchSize * PatchSize;

    /// <summary>The side of the learned position grid (<c>int(sqrt(num_position_embeddings))</c>).</summary>
    public int PositionSide => (int)Math.Sqrt(NumPositionEmbeddings);
}

/// <summary>A Qwen3-VL config: the text decoder, the vision tower, M-RoPE sections and the special token ids.</summary>
internal sealed record Qwen3VlConfig(DecoderSpec Text, int[] MropeSection, Qwen3VlVisionSpec Vision,
    int ImageTokenId, int VisionStartTokenId, int VisionEndTokenId)
{
    private static readonly LlamaLikeDefaults TextDefaults = new(151936, 4096, 22016, 32, 32, 128000, 1e-6, 5000000.0);

    /// <summary>Reads <c>config.json</c>; missing sections or inconsistent sizes are errors naming the field.</summary>
    public static Qwen3VlConfig From(HfConfig c)
    {
        var text = c.GetSection("text_config") ?? throw new ModelLoadException($"'{c.FilePath}': field 'text_config' is missing (a Qwen3-VL config has text_config and vision_config).", c.FilePath);
        var vision = c.GetSection("vision_config") ?? throw new ModelLoadException($"'{c.FilePath}': field 'vision_config' is missing.", c.FilePath);
        var spec = LlamaLikeConfig.Read(text, TextDefaults, qkNorm: true, LlamaLikeBiases.FromConfig);
        var rope = text.GetSection("rope_parameters") ?? text.GetSection("rope_scaling");
        var section = rope?.GetIntList("mrope_section")?.ToArray() ?? [24, 20, 20];
        if (section.Length != 3 || section.Any(s => s < 0) || section.Sum() != spec.HeadDim / 2)
            throw new ModelLoadException(
                $"'{c.FilePath}': field 'text_config.rope_parameters.mrope_section' must be three non-negative counts summing to head_dim / 2 = {spec.HeadDim / 2}; found [{string.Join(", ", section)}].", c.FilePath);

        var hidden = vision.GetPositiveInt("hidden_size", 1152);
        var heads = vision.Has("num_heads") ? vision.GetPositiveInt("num_heads", 16) : vision.GetPositiveInt("num_attention_heads", 16);
        if (hidden % heads != 0 || hidden / heads % 4 != 0)
            throw new ModelLoadException($"'{c.FilePath}': vision_config hidden_size {hidden} / num_heads {heads} must be a multiple of 4 (2-D rotary).", c.FilePath);
        var depth = vision.GetPositiveInt("depth", 27);
        var deep = vision.GetIntList("deepstack_visual_indexes") ?? [8, 16, 24];
        if (deep.Any(d => d < 0 || d >= depth) || deep.Distinct().Count() != deep.Count)
            throw new ModelLoadException($"'{c.FilePath}': field 'vision_config.deepstack_visual_indexes' must hold distinct block indexes below depth {depth}.", c.FilePath);
        if (deep.Count > spec.NumLayers)
            throw new ModelLoadException($"'{c.FilePath}': {deep.Count} DeepStack features but only {spec.NumLayers} text layers.", c.FilePath);
        var numPositions = vision.GetPositiveInt("num_position_embeddings", 2304);
        var side = (int)Math.Sqrt(numPositions);
        if (side * side != numPositions)
            throw new ModelLoadException($"'{c.FilePath}': field 'vision_config.num_position_embeddings' ({numPositions}) must be a square.", c.FilePath);
        var visionSpec = new Qwen3VlVisionSpec(
            depth, hidden, vision.GetString("hidden_act", "gelu_pytorch_tanh")!, vision.GetPositiveInt("intermediate_size", 4304), heads,
            vision.GetPositiveInt("in_channels", 3), vision.GetPositiveInt("patch_size", 16), vision.GetPositiveInt("spatial_merge_size", 2),
            vision.GetPositiveInt("temporal_patch_size", 2), vision.GetPositiveInt("out_hidden_size", 3584), numPositions, deep,
            vision.GetSection("rope_parameters")?.GetDouble("rope_theta", 10000.0) ?? 10000.0);
        if (visionSpec.OutHiddenSize != spec.HiddenSize)
            throw new ModelLoadException(
                $"'{c.FilePath}': vision_config.out_hidden_size ({visionSpec.OutHiddenSize}) must equal text_config.hidden_size ({spec.HiddenSize}).", c.FilePath);
        int Id(string name, int fallback) => c.GetInt(name, text.GetInt(name, fallback));
        return new Qwen3VlConfig(spec, section, visionSpec, Id("image_token_id", 151655), Id("vision_start_token_id", 151652), Id("vision_end_token_id", 151653));
    }
}
