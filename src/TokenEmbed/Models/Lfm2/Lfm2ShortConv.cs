using TokenEmbed.Models.Decoder;
using TokenEmbed.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Lfm2;

// Port of Lfm2ShortConv.slow_forward from transformers 5.17 models/lfm2/modeling_lfm2.py (no cache: pooling runs
// whole prompts). State-dict names: conv.in_proj, conv.conv, conv.out_proj.

/// <summary>
/// LFM2's gated short convolution: <c>B, C, x = chunk(in_proj(x))</c>, <c>y = out_proj(C · causal_depthwise_conv(B · x))</c>.
/// </summary>
internal sealed class Lfm2ShortConv : DecoderMixer
{
    /// <summary>The layer attribute name of the convolution mixer (<c>layers.N.conv</c>).</summary>
    public const string ModuleName = "conv";

    private readonly Dense _inProj, _outProj;
    private readonly Conv1d _conv;

    /// <param name="hidden">hidden_size.</param>
    /// <param name="kernel">conv_L_cache, the kernel width.</param>
    /// <param name="bias">conv_bias.</param>
    public Lfm2ShortConv(int hidden, int kernel, bool bias) : base(ModuleName)
    {
        _inProj = Nn.Linear(hidden, 3L * hidden, hasBias: bias);
        _outProj = Nn.Linear(hidden, hidden, hasBias: bias);
        _conv = Nn.Conv1d(hidden, hidden, kernel, padding: kernel - 1, groups: hidden, bias: bias);
        register_module("conv", _conv);
        register_module("in_proj", _inProj);
        register_module("out_proj", _outProj);
    }

    public override Tensor forward(Tensor x, DecoderBatch batch)
    {
        using var scope = NewDisposeScope();
        var t = x.shape[1];
        // transformers zeroes padded positions first (apply_mask_to_padding_states); with right padding and a causal
        // kernel this never reaches a valid position, but it keeps padded rows identical to the reference.
        var input = batch.HasPadding ? x * batch.AttentionMask.unsqueeze(-1).to(x.dtype) : x;
        var chunks = _inProj.forward(input).transpose(1, 2).chunk(3, 1);           // B, C, x: [B, H, T] each
        var gatedInput = chunks[0] * chunks[2];
        var conv = _conv.forward(gatedInput).narrow(-1, 0, t);                      // causal: the first T of T + K − 1
        var y = (chunks[1] * conv).transpose(1, 2);
        return _outProj.forward(y).MoveToOuterDisposeScope();
    }
}
