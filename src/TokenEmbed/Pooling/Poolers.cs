using TokenEmbed.Models.Layers;
using TokenEmbed.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Pooling;

/// <summary>Sequence poolers over right-padded float32 states, as sentence-transformers' Pooling module computes them.</summary>
internal static class Poolers
{
    /// <summary>Pools <paramref name="tokens"/> [B, T, D] with <paramref name="mask"/> [B, T] (1 = token) into [B, D].</summary>
    public static Tensor Pool(Tensor tokens, Tensor mask, PoolingMode mode)
    {
        switch (mode)
        {
            case PoolingMode.Cls:
                return tokens.select(1, 0).clone();
            case PoolingMode.LastToken:
            {
                using var lengths = mask.sum(1, type: ScalarType.Int64);
                using var last = lengths.sub(Ops.L(1)).clamp_min(Ops.L(0)).view(-1, 1, 1).expand(-1, 1, tokens.shape[2]);
                using var g = tokens.gather(1, last);
                return g.squeeze(1);
            }
            case PoolingMode.Mean:
            case PoolingMode.MeanSqrtLen:
            {
                using var m = mask.to(tokens.dtype).unsqueeze(-1);
                using var prod = tokens * m;
                using var sum = prod.sum(1);
                using var count = m.sum(1).clamp_min(Ops.D(1e-9));
                using var denom = mode == PoolingMode.Mean ? count.alias() : count.sqrt();
                return sum / denom;
            }
            case PoolingMode.Max:
            {
                using var pad = mask.unsqueeze(-1).eq(Ops.L(0));
                using var filled = tokens.masked_fill(pad, Ops.D(-1e9));
                return filled.amax(1);
            }
            default:
                throw new ArgumentOutOfRangeException(nameof(mode), mode, null);
        }
    }

    /// <summary>Matryoshka cut then optional L2 normalization (eps 1e-12) over the last axis.</summary>
    public static Tensor CutAndNormalize(Tensor x, int? dimensions, bool normalize)
    {
        using var cut = dimensions is { } d && d < x.shape[^1] ? x.narrow(-1, 0, d) : x.alias();
        return normalize ? nn.functional.normalize(cut, p: 2, dim: -1, eps: 1e-12) : cut.contiguous();
    }
}
