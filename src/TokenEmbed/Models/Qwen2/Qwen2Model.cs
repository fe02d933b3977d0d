using TokenEmbed.Loading;
using TokenEmbed.Models.Decoder;

namespace TokenEmbed.Models.Qwen2;

// Port of transformers 5.17 models/qwen2/modeling_qwen2.py (Qwen2Model): the Llama stack with biases on q/k/v (none on
// o_proj) and no q/k norm. Defaults from models/qwen2/configuration_qwen2.py.

/// <summary><c>Qwen2Model</c> (Qwen2, Qwen2.5, and embedding models built on them, e.g. gte-Qwen2).</summary>
internal sealed class Qwen2Model(HfConfig config) : DecoderModel(ReadSpec(config), "Qwen2Model")
{
    private static readonly LlamaLikeDefaults Defaults = new(151936, 4096, 22016, 32, 32, 32768, 1e-6, 10000.0);

    /// <summary>The decoder options config.json describes.</summary>
    public static DecoderSpec ReadSpec(HfConfig c) =>
        LlamaLikeConfig.Read(c, Defaults, qkNorm: false, LlamaLikeBiases.QkvOnly);
}
