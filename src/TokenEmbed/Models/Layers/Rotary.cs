using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// 1-D rotary position embedding with the rotate-half (half-split) convention, as transformers'
/// <c>*RotaryEmbedding</c> + <c>apply_rotary_pos_emb</c> compute it: <c>inv_freq[i] = 1 / theta^(2i/d)</c> in float32,
/// <c>freqs = pos ⊗ inv_freq</c>, <c>emb = cat(freqs, freqs)</c>, <c>x' = x·cos + rotate_half(x)·sin</c>.
/// Families with scaled frequencies (Llama 3.1) pass their own <c>inv_freq</c>.
/// </summary>
internal sealed class Rotary : IDisposable
{
    private readonly Tensor _invFreq; // [d/2] float32, CPU

    /// <summary>Default RoPE over <paramref name="dim"/> rotary dimensions with base <paramref name="theta"/>.</summary>
    public Rotary(int dim, double theta) : this(DefaultInverseFrequencies(dim, theta), dim)
    {
    }

    /// <summary>RoPE with precomputed inverse frequencies (float32, [dim/2]).</summary>
    public Rotary(float[] invFreq, int dim)
    {
        if (invFreq.Length * 2 != dim) throw new ArgumentException($"inv_freq has {invFreq.Length} entries; a rotary dim of {dim} needs {dim / 2}.");
        Dim = dim;
        _invFreq = tensor(invFreq);
    }

    /// <summary>The rotary dimension (the head dim for every family so far).</summary>
    public int Dim { get; }

    /// <summary>transformers' default inverse frequencies, computed in float32 like <c>compute_default_rope_parameters</c>.</summary>
    public static float[] DefaultInverseFrequencies(int dim, double theta)
    {
        var inv = new float[dim / 2];
        for (var i = 0; i < inv.Length; i++)
        {
            // torch: arange(0, dim, 2, int64).float() / dim  (float32), then base ** that (float32), then 1.0 / that.
            var exponent = (float)(2 * i) / dim;
            var pow = MathF.Pow((float)theta, exponent);
            inv[i] = 1.0f / pow;
        }
        return inv;
    }

    /// <summary>
    /// Llama 3.1 frequency scaling (<c>_compute_llama3_parameters</c> in transformers' <c>modeling_rope_utils.py</c>):
    /// long wavelengths (&gt; <c>originalContext / lowFreqFactor</c>) are divided by <paramref name="factor"/>, short ones
    /// (&lt; <c>originalContext / highFreqFactor</c>) are kept, the band between is interpolated. Every step runs in
    /// float32 tensor ops in the order transformers uses, so the values match its buffer bit for bit.
    /// </summary>
    public static float[] Llama3InverseFrequencies(int dim, double theta, double factor, double lowFreqFactor, double highFreqFactor, double originalContext)
    {
        using var scope = NewDisposeScope();
        var inv = tensor(DefaultInverseFrequencies(dim, theta));
        var lowWavelength = originalContext / lowFreqFactor;
        var highWavelength = originalContext / highFreqFactor;
        var wavelength = inv.reciprocal().mul(Ops.D(2 * Math.PI));                      // 2π / inv (torch: reciprocal · scalar)
        var scaledLong = where(wavelength.gt(Ops.D(lowWavelength)), inv.div(Ops.D(factor)), inv);
        var smooth = wavelength.reciprocal().mul(Ops.D(originalContext)).sub(Ops.D(lowFreqFactor)).div(Ops.D(highFreqFactor - lowFreqFactor));
        var smoothed = Ops.Add(smooth.neg().add(Ops.D(1), Ops.One).mul(scaledLong).div(Ops.D(factor)), smooth * scaledLong);
        var medium = wavelength.lt(Ops.D(highWavelength)).logical_not().logical_and(wavelength.gt(Ops.D(lowWavelength)).logical_not());
        var result = where(medium, smoothed, scaledLong);
        return result.data<float>().ToArray();
    }

    /// <summary>cos and sin tables [B or 1, T, dim] for integer <paramref name="positions"/> [B or 1, T], in <paramref name="dtype"/>.</summary>
    public (Tensor Cos, Tensor Sin) Tables(Tensor positions, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var inv = _invFreq.to(positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;          // [B, T, d/2]
        var emb = cat([freqs, freqs], -1);                                           // [B, T, d]
        var cos = emb.cos().to(dtype);
        var sin = emb.sin().to(dtype);
        return (cos.MoveToOuterDisposeScope(), sin.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// Interleaved multimodal RoPE (Qwen3-VL's <c>Qwen3VLTextRotaryEmbedding</c>): positions [3, B, T] (T, H, W axes); frequency
    /// j takes the H positions when <c>j % 3 == 1</c> and <c>j &lt; 3·section[1]</c>, the W positions when <c>j % 3 == 2</c>
    /// and <c>j &lt; 3·section[2]</c>, else the T positions. Equal rows give exactly <see cref="Tables"/>.
    /// </summary>
    public (Tensor Cos, Tensor Sin) InterleavedMultimodalTables(Tensor positions, IReadOnlyList<int> section, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var inv = _invFreq.to(positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(-1) * inv;          // [3, B, T, d/2]
        var half = (int)inv.shape[0];
        var axis = new long[half];
        for (var j = 0; j < half; j++)
            axis[j] = j % 3 == 1 && j < 3 * section[1] ? 1 : j % 3 == 2 && j < 3 * section[2] ? 2 : 0;
        var pick = tensor(axis, device: positions.device).view(1, 1, 1, half).expand(1, freqs.shape[1], freqs.shape[2], half);
        var selected = freqs.gather(0, pick).squeeze(0);                            // [B, T, d/2]
        var emb = cat([selected, selected], -1);
        return (emb.cos().to(dtype).MoveToOuterDisposeScope(), emb.sin().to(dtype).MoveToOuterDisposeScope());
    }

    /// <summary>Applies the rotation to <paramref name="x"/> [B, heads, T, d] with tables [B or 1, T, d].</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var c = cos.unsqueeze(1);
        using var s = sin.unsqueeze(1);
        var half = x.shape[^1] / 2;
        using var x1 = x.narrow(-1, 0, half);
        using var x2 = x.narrow(-1, half, half);
        using var neg = x2.neg();
        using var rotated = cat([neg, x1], -1);
        using var b = rotated * s;
        var a = x * c;
        return Ops.AddInPlace(a, b); // in place: returns a itself
    }

    /// <summary>
    /// <see cref="Apply"/> computed in float32 and cast back to <paramref name="x"/>'s dtype, as families whose
    /// <c>apply_rotary_pos_emb</c> upcasts do (ModernBERT, Gemma 3); tables must be float32.
    /// </summary>
    public static Tensor ApplyInFloat32(Tensor x, Tensor cos, Tensor sin)
    {
        if (x.dtype == ScalarType.Float32) return Apply(x, cos, sin);
        using var x32 = x.to(ScalarType.Float32);
        using var y = Apply(x32, cos, sin);
        return y.to(x.dtype);
    }

    /// <summary>
    /// Partial rotary (flash-attn's <c>apply_rotary_emb</c> with <c>rotary_dim &lt; head_dim</c>): rotates the first
    /// <c>cos.shape[-1]</c> features of <paramref name="x"/> [B, heads, T, hd] and passes the rest through unchanged.
    /// </summary>
    public static Tensor ApplyPartial(Tensor x, Tensor cos, Tensor sin)
    {
        var rd = cos.shape[^1];
        var hd = x.shape[^1];
        if (rd == hd) return Apply(x, cos, sin);
        using var head = x.narrow(-1, 0, rd);
        using var tail = x.narrow(-1, rd, hd - rd);
        using var rotated = Apply(head, cos, sin);
        return cat([rotated, tail], -1);
    }

    /// <inheritdoc />
    public void Dispose() => _invFreq.Dispose();
}
