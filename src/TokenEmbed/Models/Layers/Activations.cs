using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>Hugging Face activation names (<c>transformers.activations.ACT2FN</c>) as TorchSharp functions.</summary>
internal static class Activations
{
    /// <summary>The function for <paramref name="name"/>; throws <see cref="ModelLoadException"/> naming an unknown one.</summary>
    public static Func<Tensor, Tensor> Get(string name, string? configPath = null) => name switch
    {
        "gelu" => x => nn.functional.gelu(x),
        "gelu_new" or "gelu_pytorch_tanh" or "gelu_fast" => x => nn.functional.gelu(x, TorchSharp.Modules.GELU.Approximate.tanh),
        "relu" => x => nn.functional.relu(x),
        "silu" or "swish" => x => nn.functional.silu(x),
        "tanh" => x => x.tanh(),
        "sigmoid" => x => x.sigmoid(),
        "identity" or "linear" => x => x.alias(),
        _ => throw new ModelLoadException($"Activation '{name}' is not supported{(configPath != null ? $" ('{configPath}')" : "")}.", configPath),
    };
}
