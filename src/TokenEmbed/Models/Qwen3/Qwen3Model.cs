using TokenEmbed.Loading;
using TokenEmbed.Models.Decoder;

namespace TokenEmbed.Models.Qwen3;

// Port of transformers 5.17 models/qwen3/modeling_qwen3.py (Qwen3Model): the Llama stack with a per-head RMSNorm on
// queries and keys (q_norm / k_norm, before RoPE), an explicit head_dim, and attention biases only when
// attention_bias is set. Defaults from models/qwen3/configuration_qwen3.py.

/// <summary><c>Qwen3Model</c> (Qwen3, Qwen3-Embedding, and the text side of <c>Qwen3ForCausalLM</c>).</summary>
internal sealed class Qwen3Model(HfConfig config) : DecoderModel(ReadSpec(config), "Qwen3Model")
{
    private static readonly LlamaLikeDefaults Defaults = new(151936, 4096, 22016, 32, 32, 32768, 1e-6, 10000.0);

    /// <summary>The decoder options config.json describes.</summary>
    public static DecoderSpec ReadSpec(HfConfig c) => LlamaLikeConfig.Read(c, Defaults, qkNorm: true, LlamaLikeBiases.FromConfig);
}
