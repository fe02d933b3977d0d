using TokenEmbed.Loading;
using TokenEmbed.Models.Decoder;

namespace TokenEmbed.Models.Llama;

// Port of transformers 5.17 models/llama/modeling_llama.py (LlamaModel), including Llama 3.1 RoPE scaling
// (rope_type "llama3", modeling_rope_utils.py). attention_bias adds biases to q/k/v/o, mlp_bias to the MLP.
// Defaults from models/llama/configuration_llama.py.

/// <summary><c>LlamaModel</c> (Llama 2/3/3.1/3.2 and models saved in its layout).</summary>
internal sealed class LlamaModel(HfConfig config) : DecoderModel(ReadSpec(config), "LlamaModel")
{
    private static readonly LlamaLikeDefaults Defaults = new(32000, 4096, 11008, 32, 32, 2048, 1e-6, 10000.0);

    /// <summary>The decoder options config.json describes.</summary>
    public static DecoderSpec ReadSpec(HfConfig c) => LlamaLikeConfig.Read(c, Defaults, qkNorm: false, LlamaLikeBiases.FromConfig);
}
