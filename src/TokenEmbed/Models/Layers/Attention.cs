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
    {
        if (Gemm.KernelsActive && Kernels.AttentionKernel.Supports(q, k, v, additiveMask))
            return Kernels.AttentionKernel.Run(q, k, v, additiveMask, (float)(1.0 / Math.Sqrt(q.shape[^1])));
        if (Gemm.OneDnnActive && q.dtype == ScalarType.Float32 && q.device_type == DeviceType.CPU)
            return Eager(q, k, v, additiveMask);
        return nn.functional.scaled_dot_product_attention(q, k, v, additiveMask, 0.0, false);
    }

    /// <summary>
    /// transformers' eager attention, its batched products on oneDNN: on the CPU in float32 this is 2–3× faster than libtorch's
    /// fused SDPA kernel, whose small GEMMs take MKL's slow path on AMD CPUs (measured in docs/PERFORMANCE.md).
    /// </summary>
    private static Tensor Eager(Tensor q, Tensor k, Tensor v, Tensor? additiveMask)
    {
        using var scope = NewDisposeScope();
        using var fast = Runtime.OneDnnMatmul.Enter();
        var scores = q.mul(Ops.D(1.0 / Math.Sqrt(q.shape[^1]))).matmul(k.transpose(-1, -2));
        if (additiveMask is not null) scores.add_(additiveMask, Ops.One);
        var probs = scores.softmax(-1);
        return probs.matmul(v).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The additive key-padding mask [B, 1, 1, T]: 0 where <paramref name="attentionMask"/> is 1, the dtype's most
    /// negative finite value elsewhere (finite, never −inf, so fully masked rows stay finite).
    /// </summary>
    public static Tensor KeyPaddingMask(Tensor attentionMask, ScalarType dtype)
    {
        var min = MinValue(dtype);
        using var keep = attentionMask.to(ScalarType.Bool);
        using var zeros = zeros_like(attentionMask, dtype);
        return zeros.masked_fill(keep.logical_not(), Ops.D(min)).unsqueeze(1).unsqueeze(1);
    }

    /// <summary>The most negative finite value of a floating dtype (transformers' <c>torch.finfo(dtype).min</c>).</summary>
    public static double MinValue(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => -65504.0,
        ScalarType.BFloat16 => -3.3895313892515355e38,
        ScalarType.Float64 => double.MinValue,
        _ => float.MinValue,
    };

    /// <summary>
    /// An additive mask [B, 1, T, T] from a boolean "allowed" pattern [T, T] (query × key) combined with key padding:
    /// 0 where allowed, finfo.min elsewhere. Causal: <c>k &lt;= q</c>; sliding window: <c>|q − k| &lt;= w</c>.
    /// </summary>
    public static Tensor PatternMask(Tensor attentionMask, Tensor allowed, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var keys = attentionMask.to(ScalarType.Bool).unsqueeze(1).unsqueeze(1);          // [B, 1, 1, T]
        var ok = keys.logical_and(allowed.unsqueeze(0).unsqueeze(0));                     // [B, 1, T, T]
        var mask = zeros(ok.shape, dtype, attentionMask.device).masked_fill(ok.logical_not(), Ops.D(MinValue(dtype)));
        return mask.MoveToOuterDisposeScope();
    }

    /// <summary>Causal pattern [T, T]: key k is visible to query q when k &lt;= q.</summary>
    public static Tensor CausalPattern(long t, Device device) => ones(t, t, ScalarType.Bool, device).tril();

    /// <summary>Sliding-window pattern [T, T]: |q − k| &lt;= <paramref name="halfWindow"/>.</summary>
    public static Tensor SlidingPattern(long t, long halfWindow, Device device)
    {
        using var all = ones(t, t, ScalarType.Bool, device);
        using var upper = all.triu(-halfWindow);
        return upper.tril(halfWindow);
    }

    /// <summary>GQA: repeats each of the kv heads [B, kvHeads, S, hd] <paramref name="nRep"/> times along the head axis.</summary>
    public static Tensor RepeatKv(Tensor x, int nRep) => nRep == 1 ? x.alias() : x.repeat_interleave(nRep, 1);

    /// <summary>
    /// Self-attention over a fused projection <paramref name="qkv"/> [B, T, 3·heads·hd] laid out as [Q; K; V], without rotary
    /// embeddings (BERT's query / key / value): the context [B, T, heads·hd]. The CPU kernel reads the projection in place;
    /// elsewhere it is split into heads for <see cref="ScaledDotProduct"/>.
    /// </summary>
    public static Tensor FusedQkv(Tensor qkv, int heads, int headDim, Tensor? additiveMask)
    {
        if (Gemm.KernelsActive && Kernels.AttentionKernel.SupportsFused(qkv, heads, heads, additiveMask))
            return Kernels.AttentionKernel.RunFused(qkv, heads, heads, additiveMask, (float)(1.0 / Math.Sqrt(headDim)));
        using var scope = NewDisposeScope();
        return FusedQkvRotary(qkv, heads, headDim, additiveMask, x => x).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Self-attention over a fused projection <paramref name="qkv"/> [B, T, 3·heads·hd] laid out as [Q; K; V] (ModernBERT's
    /// <c>Wqkv</c>, Jina's <c>mixer.Wqkv</c>): splits it, rotates Q and K with <paramref name="rope"/>, attends, merges heads.
    /// Call inside a dispose scope (the intermediates are left to it).
    /// </summary>
    public static Tensor FusedQkvRotary(Tensor qkv, int heads, int headDim, Tensor? additiveMask, Func<Tensor, Tensor> rope)
    {
        long hidden = (long)heads * headDim;
        var q = rope(SplitHeads(qkv.narrow(-1, 0, hidden), heads, headDim));
        var k = rope(SplitHeads(qkv.narrow(-1, hidden, hidden), heads, headDim));
        var v = SplitHeads(qkv.narrow(-1, 2 * hidden, hidden), heads, headDim);
        return MergeHeads(ScaledDotProduct(q, k, v, additiveMask));
    }
}
