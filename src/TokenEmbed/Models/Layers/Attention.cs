using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>Multi-head attention pieces shared by every family.</summary>
internal static class Attention
{
    /// <summary>[B, T, heads·hd] → [B, heads, T, hd].</summary>
    public static Tensor SplitHeads(Tensor x, int heads, int headDim)
    {
        var b = x.shape[0];
        var t = x.shape[1];
        return x.view(b, t, heads, headDim).transpose(1, 2);
    }

    /// <summary>[B, heads, T, hd] → [B, T, heads·hd] (head-major).</summary>
    public static Tensor MergeHeads(Tensor x)
    {
        var b = x.shape[0];
        var t = x.shape[2];
        return x.transpose(1, 2).reshape(b, t, x.shape[1] * x.shape[3]);
    }

    /// <summary>
    /// softmax(Q·Kᵀ/√hd + mask)·V, the math of transformers' eager attention (scores in the compute dtype,
    /// softmax in float32 when the inputs are half precision, as the fused kernels do).
    /// </summary>
    /// <param name="q">[B, heads, T, hd].</param>
    /// <param name="k">[B, heads, S, hd].</param>
    /// <param name="v">[B, heads, S, hd].</param>
    /// <param name="additiveMask">[B, 1, T or 1, S] of 0 / finfo.min in the compute dtype, or null.</param>
    public static Tensor ScaledDotProduct(Tensor q, Tensor k, Tensor v, Tensor? additiveMask)
        => nn.functional.scaled_dot_product_attention(q, k, v, additiveMask, 0.0, false);

    /// <summary>
    /// The additive key-padding mask [B, 1, 1, T]: 0 where <paramref name="attentionMask"/> is 1, the dtype's most
    /// negative finite value elsewhere (finite, never −inf, so fully masked rows stay finite).
    /// </summary>
    public static Tensor KeyPaddingMask(Tensor attentionMask, ScalarType dtype)
    {
        var min = dtype switch
        {
            ScalarType.Float16 => -65504.0,
            ScalarType.BFloat16 => -3.3895313892515355e38,
            ScalarType.Float64 => double.MinValue,
            _ => float.MinValue,
        };
        using var keep = attentionMask.to(ScalarType.Bool);
        using var zeros = zeros_like(attentionMask, dtype);
        return zeros.masked_fill(keep.logical_not(), min).unsqueeze(1).unsqueeze(1);
    }
}
