using TokenEmbed.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.ModernBert;

// Port of transformers 5.17 models/modernbert/modeling_modernbert.py (ModernBertModel, eager attention path;
// see SPEC.md §4). Field names are the state-dict names, so loading is a strict 1:1 mapping.

/// <summary><c>ModernBertEmbeddings</c>: token embeddings then LayerNorm (no position embeddings: RoPE only).</summary>
internal sealed class ModernBertEmbeddings : nn.Module<ModelInput, Tensor>
{
    private readonly EmbeddingTable tok_embeddings;
    private readonly LayerNorm norm;

    public ModernBertEmbeddings(ModernBertConfig c) : base("embeddings")
    {
        tok_embeddings = Nn.Embedding(c.VocabSize, c.HiddenSize);
        norm = Nn.LayerNorm(c.HiddenSize, c.NormEps, bias: c.NormBias);
        RegisterComponents();
    }

    public override Tensor forward(ModelInput input)
    {
        using var e = input.EmbedTokens(tok_embeddings);
        return norm.forward(e);
    }
}

/// <summary>
/// <c>ModernBertAttention</c>: fused <c>Wqkv</c> (rows = [Q all heads; K; V]), RoPE in float32, masked attention, <c>Wo</c>.
/// </summary>
internal sealed class ModernBertAttention : nn.Module<Tensor, Tensor, Tensor, Tensor, Tensor>
{
    private readonly Dense Wqkv;
    private readonly Dense Wo;
    private readonly int _heads;
    private readonly int _headDim;

    public ModernBertAttention(ModernBertConfig c) : base("attn")
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        Wqkv = Nn.Linear(c.HiddenSize, 3L * c.HiddenSize, hasBias: c.AttentionBias);
        Wo = Nn.Linear(c.HiddenSize, c.HiddenSize, hasBias: c.AttentionBias);
        RegisterComponents();
    }

    /// <param name="x">Normed hidden states [B, T, H].</param>
    /// <param name="mask">Additive mask [B, 1, 1 or T, T] of the layer's type.</param>
    /// <param name="cos">float32 RoPE table [1, T, hd] for the layer's theta.</param>
    /// <param name="sin">float32 RoPE table [1, T, hd].</param>
    public override Tensor forward(Tensor x, Tensor mask, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var ctx = Attention.FusedQkvRotary(Wqkv.forward(x), _heads, _headDim, mask, t => Rotary.ApplyInFloat32(t, cos, sin));
        return Wo.forward(ctx).MoveToOuterDisposeScope();
    }
}

/// <summary><c>ModernBertMLP</c>: GeGLU, <c>Wo(act(a) · gate)</c> with <c>a, gate = Wi(x).chunk(2)</c>.</summary>
internal sealed class ModernBertMlp : nn.Module<Tensor, Tensor>
{
    private readonly Dense Wi;
    private readonly Dense Wo;
    private readonly Func<Tensor, Tensor> _act;

    public ModernBertMlp(ModernBertConfig c) : base("mlp")
    {
        Wi = Nn.Linear(c.HiddenSize, 2L * c.IntermediateSize, hasBias: c.MlpBias);
        Wo = Nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: c.MlpBias);
        _act = Activations.Get(c.HiddenActivation);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var fused = Wi.forward(x);
        using var gated = GatedMlp.CombineFused(fused, _act);
        return Wo.forward(gated);
    }
}

/// <summary><c>ModernBertEncoderLayer</c> (pre-LN); layer 0 has no <c>attn_norm</c> (an identity in transformers).</summary>
internal sealed class ModernBertEncoderLayer : nn.Module<Tensor, Tensor, Tensor, Tensor, Tensor>
{
    private readonly LayerNorm? attn_norm;
    private readonly ModernBertAttention attn;
    private readonly LayerNorm mlp_norm;
    private readonly ModernBertMlp mlp;

    public ModernBertEncoderLayer(ModernBertConfig c, int index) : base("layer")
    {
        Type = c.LayerTypes[index];
        attn_norm = index == 0 ? null : Nn.LayerNorm(c.HiddenSize, c.NormEps, bias: c.NormBias);
        attn = new ModernBertAttention(c);
        mlp_norm = Nn.LayerNorm(c.HiddenSize, c.NormEps, bias: c.NormBias);
        mlp = new ModernBertMlp(c);
        RegisterComponents();
    }

    /// <summary>Full or sliding attention.</summary>
    public ModernBertLayerType Type { get; }

    public override Tensor forward(Tensor h, Tensor mask, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var x = attn_norm?.forward(h) ?? h;
        var h1 = Ops.Add(h, attn.forward(x, mask, cos, sin));
        var h2 = Ops.Add(h1, mlp.forward(mlp_norm.forward(h1)));
        return h2.MoveToOuterDisposeScope();
    }
}

/// <summary><c>ModernBertModel</c> as a backbone: embeddings, the layer stack and <c>final_norm</c>.</summary>
internal sealed class ModernBertModel : nn.Module<ModelInput, Tensor>, IBackbone
{
    private readonly ModernBertEmbeddings embeddings;
    private readonly ModuleList<ModernBertEncoderLayer> layers;
    private readonly LayerNorm final_norm;
    private readonly ModernBertConfig _config;
    private readonly Rotary _globalRope;
    private readonly Rotary _localRope;

    public ModernBertModel(ModernBertConfig config) : base("ModernBertModel")
    {
        _config = config;
        embeddings = new ModernBertEmbeddings(config);
        layers = nn.ModuleList(Enumerable.Range(0, config.NumHiddenLayers).Select(i => new ModernBertEncoderLayer(config, i)).ToArray());
        final_norm = Nn.LayerNorm(config.HiddenSize, config.NormEps, bias: config.NormBias);
        _globalRope = new Rotary(config.HeadDim, config.GlobalRopeTheta);
        _localRope = new Rotary(config.HeadDim, config.LocalRopeTheta);
        RegisterComponents();
        eval();
    }

    public int HiddenSize => _config.HiddenSize;
    public int VocabSize => _config.VocabSize;
    public int? MaxPositions => _config.MaxPositionEmbeddings;
    public bool IsCausal => false;

    /// <summary>Weights (name after the prefix) a ModernBERT checkpoint may carry that the backbone does not use: none.</summary>
    public static bool IsIgnorable(string nameWithoutPrefix) => false;

    public Tensor Forward(ModelInput input) => forward(input);

    public override Tensor forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var (inputIds, attentionMask) = (input.InputIds, input.AttentionMask);
        var t = inputIds.shape[1];
        var h = embeddings.forward(input);

        // Positions are arange(T) for every row by default (right padding); masks use finfo.min, never −inf, so fully
        // masked rows stay finite instead of NaN (SPEC.md §1).
        var positions = input.PositionsOrArange();
        var globalMask = Attention.KeyPaddingMask(attentionMask, h.dtype);
        var localMask = Attention.PatternMask(attentionMask, Attention.SlidingPattern(t, _config.HalfWindow, inputIds.device), h.dtype);
        // In half precision finfo.min + score can still round to −inf inside a math-path SDPA; letting each query see
        // itself guarantees no fully masked row. Only padded queries change (valid ones already see themselves), and
        // their outputs are discarded; valid queries never see padded keys, so valid rows are unaffected.
        using (var self = eye(t, t, ScalarType.Bool, inputIds.device)) localMask.masked_fill_(self, Ops.D(0.0));
        var (gCos, gSin) = _globalRope.Tables(positions, ScalarType.Float32);
        var (lCos, lSin) = _localRope.Tables(positions, ScalarType.Float32);

        foreach (var layer in layers)
        {
            var global = layer.Type == ModernBertLayerType.Full;
            var next = layer.forward(h, global ? globalMask : localMask, global ? gCos : lCos, global ? gSin : lSin);
            h.Dispose();
            h = next;
        }
        return final_norm.forward(h).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _globalRope.Dispose();
            _localRope.Dispose();
        }
        base.Dispose(disposing);
    }
}
