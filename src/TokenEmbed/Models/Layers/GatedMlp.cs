using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// The gated linear unit of GLU feed-forward blocks: <c>act(input) · gate</c>. ModernBERT's GeGLU computes both from
/// one fused projection (<c>Wi</c>: first half = input, second half = gate); SwiGLU decoders (Llama, Qwen3) pass
/// <c>gate_proj(x)</c> as the activated input and <c>up_proj(x)</c> as the gate.
/// </summary>
internal static class GatedMlp
{
    /// <summary><c>act(input) · gate</c>.</summary>
    public static Tensor Combine(Tensor input, Tensor gate, Func<Tensor, Tensor> activation)
    {
        using var a = activation(input); // not in place: an identity activation returns an alias of the input
        return a * gate;
    }

    /// <summary>Splits a fused projection [..., 2·I] into input (first half) and gate (second half), then <see cref="Combine"/>.</summary>
    public static Tensor CombineFused(Tensor fused, Func<Tensor, Tensor> activation)
    {
        var half = fused.shape[^1] / 2;
        using var input = fused.narrow(-1, 0, half);
        using var gate = fused.narrow(-1, half, half);
        return Combine(input, gate, activation);
    }
}
