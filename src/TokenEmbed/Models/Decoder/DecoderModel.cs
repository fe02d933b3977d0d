using TokenEmbed.Loading;
using TokenEmbed.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Decoder;

// The pre-norm decoder stack shared by the causal families. It ports the common structure of transformers 5.17
// models/llama/modeling_llama.py (LlamaModel, LlamaDecoderLayer, LlamaAttention, LlamaMLP), with the per-family
// differences as options: q/k RMSNorm per head before RoPE (models/qwen3/modeling_qwen3.py, models/lfm2/modeling_lfm2.py),
// q/k/v biases (models/qwen2/modeling_qwen2.py), Llama 3.1 scaled RoPE, and a per-layer token mixer that a family may
// supply (LFM2's short convolutions live in Models/Lfm2 and come in through DecoderModel's mixer factory). The modules register themselves under each family's state-dict names (which differ:
// o_proj vs out_proj, mlp.gate_proj vs feed_forward.w1, norm vs embedding_norm), so loading stays a strict 1:1 mapping.

/// <summary>The state-dict names of one decoder family (transformers' module attribute names).</summary>
internal sealed record DecoderNames(
    string InputNorm, string PostNorm, string Attention, string Mlp, string FinalNorm,
    string OutProj, string QNorm, string KNorm, string Gate, string Up, string Down)
{
    /// <summary>Llama, Qwen2, Qwen3: <c>input_layernorm</c>, <c>self_attn.o_proj</c>, <c>mlp.gate_proj</c>, <c>norm</c>, …</summary>
    public static readonly DecoderNames Llama = new("input_layernorm", "post_attention_layernorm", "self_attn", "mlp", "norm",
        "o_proj", "q_norm", "k_norm", "gate_proj", "up_proj", "down_proj");
}

/// <summary>
/// A decoder's shape and per-family options, read from config.json by the family (Qwen3, Llama, Qwen2, LFM2).
/// </summary>
internal sealed record DecoderSpec(
    DecoderNames Names, int VocabSize, int HiddenSize, int IntermediateSize, int NumHeads, int NumKvHeads, int HeadDim,
    string HiddenAct, int MaxPositions, double NormEps, float[] InverseFrequencies, int NumLayers,
    bool QkNorm = false, bool QkvBias = false, bool OutputBias = false, bool MlpBias = false,
    bool Bidirectional = false, bool SkipFinalNorm = false)
{
    /// <summary>Checks the head layout; <paramref name="config"/> names the file in errors.</summary>
    public DecoderSpec Validate(HfConfig config)
    {
        if (NumHeads % NumKvHeads != 0)
            throw new ModelLoadException($"'{config.FilePath}': num_attention_heads {NumHeads} is not a multiple of num_key_value_heads {NumKvHeads}.", config.FilePath);
        if (HeadDim % 2 != 0)
            throw new ModelLoadException($"'{config.FilePath}': head_dim {HeadDim} must be even for rotary embeddings.", config.FilePath);
        return this;
    }
}

/// <summary>Per-forward inputs every layer needs: the masks and the rotary tables.</summary>
internal sealed record DecoderBatch(Tensor AttentionMask, Tensor CausalMask, Tensor Cos, Tensor Sin, bool HasPadding);

/// <summary>A token mixer (attention or convolution): [B, T, H] → [B, T, H].</summary>
internal abstract class DecoderMixer(string name) : nn.Module<Tensor, DecoderBatch, Tensor>(name);

/// <summary>Causal GQA self-attention with optional per-head q/k RMSNorm (before RoPE) and biases.</summary>
internal sealed class DecoderAttention : DecoderMixer, IFusable
{
    private readonly Dense _q, _k, _v, _o;
    private readonly FusedProjection _qkv;
    private readonly RmsNorm? _qNorm, _kNorm;
    private readonly int _heads, _kvHeads, _headDim;

    public DecoderAttention(DecoderSpec s) : base("self_attn")
    {
        (_heads, _kvHeads, _headDim) = (s.NumHeads, s.NumKvHeads, s.HeadDim);
        _q = Nn.Linear(s.HiddenSize, s.NumHeads * s.HeadDim, hasBias: s.QkvBias);
        _k = Nn.Linear(s.HiddenSize, s.NumKvHeads * s.HeadDim, hasBias: s.QkvBias);
        _v = Nn.Linear(s.HiddenSize, s.NumKvHeads * s.HeadDim, hasBias: s.QkvBias);
        _o = Nn.Linear(s.NumHeads * s.HeadDim, s.HiddenSize, hasBias: s.OutputBias);
        register_module("q_proj", _q);
        register_module("k_proj", _k);
        register_module("v_proj", _v);
        register_module(s.Names.OutProj, _o);
        _qkv = new FusedProjection(_q, _k, _v);
        if (s.QkNorm)
        {
            _qNorm = new RmsNorm(s.HeadDim, s.NormEps);
            _kNorm = new RmsNorm(s.HeadDim, s.NormEps);
            register_module(s.Names.QNorm, _qNorm);
            register_module(s.Names.KNorm, _kNorm);
        }
    }

    public override Tensor forward(Tensor x, DecoderBatch batch)
    {
        using var scope = NewDisposeScope();
        var (b, t) = (x.shape[0], x.shape[1]);
        var qkv = _qkv.Forward(x);   // one GEMM for Q, K and V
        long qWidth = (long)_heads * _headDim, kvWidth = (long)_kvHeads * _headDim;
        var q = qkv.narrow(-1, 0, qWidth).view(b, t, _heads, _headDim);
        var k = qkv.narrow(-1, qWidth, kvWidth).view(b, t, _kvHeads, _headDim);
        var v = qkv.narrow(-1, qWidth + kvWidth, kvWidth).view(b, t, _kvHeads, _headDim).transpose(1, 2);
        if (_qNorm != null) q = _qNorm.forward(q);
        if (_kNorm != null) k = _kNorm.forward(k);
        q = Rotary.Apply(q.transpose(1, 2), batch.Cos, batch.Sin);
        k = Rotary.Apply(k.transpose(1, 2), batch.Cos, batch.Sin);
        var rep = _heads / _kvHeads;
        var ctx = Attention.ScaledDotProduct(q, Attention.RepeatKv(k, rep), Attention.RepeatKv(v, rep), batch.CausalMask);
        return _o.forward(Attention.MergeHeads(ctx)).MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Fuse() => _qkv.Fuse();

    protected override void Dispose(bool disposing)
    {
        if (disposing) _qkv.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>The decoder MLP: <c>down(act(gate(x)) · up(x))</c> (SwiGLU with silu), over the shared <see cref="GatedMlp"/>.</summary>
internal sealed class DecoderMlp : nn.Module<Tensor, Tensor>
{
    private readonly Dense _gate, _up, _down;
    private readonly Func<Tensor, Tensor> _act;

    public DecoderMlp(DecoderSpec s) : base(s.Names.Mlp)
    {
        _gate = Nn.Linear(s.HiddenSize, s.IntermediateSize, hasBias: s.MlpBias);
        _up = Nn.Linear(s.HiddenSize, s.IntermediateSize, hasBias: s.MlpBias);
        _down = Nn.Linear(s.IntermediateSize, s.HiddenSize, hasBias: s.MlpBias);
        _act = Activations.Get(s.HiddenAct);
        register_module(s.Names.Gate, _gate);
        register_module(s.Names.Up, _up);
        register_module(s.Names.Down, _down);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var gated = GatedMlp.Combine(_gate.forward(x), _up.forward(x), _act);
        return _down.forward(gated).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Builds the token mixer of layer <c>index</c> and the attribute name it is saved under; the default is causal
/// self-attention under <see cref="DecoderNames.Attention"/>.
/// </summary>
internal delegate (string Name, DecoderMixer Mixer) DecoderMixerFactory(DecoderSpec spec, int index);

/// <summary>One pre-norm layer: <c>h += mixer(norm1(h)); h += mlp(norm2(h))</c>.</summary>
internal sealed class DecoderLayer : nn.Module<Tensor, DecoderBatch, Tensor>
{
    private readonly RmsNorm _inputNorm, _postNorm;
    private readonly DecoderMixer _mixer;
    private readonly DecoderMlp _mlp;

    public DecoderLayer(DecoderSpec s, string mixerName, DecoderMixer mixer) : base("layer")
    {
        _inputNorm = new RmsNorm(s.HiddenSize, s.NormEps);
        _postNorm = new RmsNorm(s.HiddenSize, s.NormEps);
        _mixer = mixer;
        _mlp = new DecoderMlp(s);
        register_module(s.Names.InputNorm, _inputNorm);
        register_module(mixerName, _mixer);
        register_module(s.Names.PostNorm, _postNorm);
        register_module(s.Names.Mlp, _mlp);
    }

    public override Tensor forward(Tensor h, DecoderBatch batch)
    {
        using var scope = NewDisposeScope();
        var mixed = Ops.Add(h, _mixer.forward(_inputNorm.forward(h), batch));
        var result = Ops.AddInPlace(mixed, _mlp.forward(_postNorm.forward(mixed)));
        return result.MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A causal decoder as a pooling backbone: <c>embed_tokens</c> → layers → final RMSNorm. Positions default to
/// <c>arange(T)</c> for every row; with right padding and a causal mask each valid token sees exactly what it would see alone.
/// </summary>
internal class DecoderModel : nn.Module<ModelInput, Tensor>, IBackbone
{
    /// <summary>Every layer mixes tokens with causal self-attention.</summary>
    public static readonly DecoderMixerFactory AttentionOnly = (s, _) => (s.Names.Attention, new DecoderAttention(s));

    private readonly EmbeddingTable _embedTokens;
    private readonly ModuleList<DecoderLayer> _layers;
    private readonly RmsNorm _norm;
    private readonly Rotary _rotary;

    public DecoderModel(DecoderSpec spec, string name, DecoderMixerFactory? mixers = null) : base(name)
    {
        Spec = spec;
        mixers ??= AttentionOnly;
        _embedTokens = Nn.Embedding(spec.VocabSize, spec.HiddenSize);
        _layers = nn.ModuleList(Enumerable.Range(0, spec.NumLayers).Select(i =>
        {
            var (mixerName, mixer) = mixers(spec, i);
            return new DecoderLayer(spec, mixerName, mixer);
        }).ToArray());
        _norm = new RmsNorm(spec.HiddenSize, spec.NormEps);
        _rotary = new Rotary(spec.InverseFrequencies, spec.HeadDim);
        register_module("embed_tokens", _embedTokens);
        register_module("layers", _layers);
        register_module(spec.Names.FinalNorm, _norm);
        eval();
    }

    /// <summary>The shape and options the model was built with.</summary>
    public DecoderSpec Spec { get; }

    public int HiddenSize => Spec.HiddenSize;
    public int VocabSize => Spec.VocabSize;
    public int? MaxPositions => Spec.MaxPositions;
    public bool IsCausal => !Spec.Bidirectional;

    /// <summary>
    /// Weights decoder checkpoints may carry that a pooling model does not use: the rotary <c>inv_freq</c> buffer older
    /// Llama checkpoints saved (transformers ignores it on load; it is recomputed from the config).
    /// </summary>
    public static bool IsIgnorable(string nameWithoutPrefix) => nameWithoutPrefix.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal);

    public Tensor Forward(ModelInput input) => forward(input);

    public override Tensor forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var attentionMask = input.AttentionMask;
        var t = input.Length;
        var device = input.InputIds.device;
        var h = input.EmbedTokens(_embedTokens);
        // Causal attention, or (embedding models converted to encoders, e.g. Nemotron colembed) key padding only.
        var causal = Spec.Bidirectional
            ? Attention.KeyPaddingMask(attentionMask, h.dtype)
            : Attention.PatternMask(attentionMask, Attention.CausalPattern(t, device), h.dtype);
        var (cos, sin) = RotaryTables(input, h.dtype);
        var hasPadding = attentionMask.min().item<long>() == 0;
        var batch = new DecoderBatch(attentionMask, causal, cos, sin, hasPadding);
        for (var i = 0; i < _layers.Count; i++)
        {
            var next = AfterLayer(i, _layers[i].forward(h, batch), input);
            h.Dispose();
            h = next;
        }
        // Some embedding models take the last layer's output before the final norm (its weight stays in the checkpoint).
        return (Spec.SkipFinalNorm ? h : _norm.forward(h)).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// The rotary cos/sin tables for the batch's positions (1-D: the given [B, T] or <c>arange(T)</c>). A family with
    /// other positions (multimodal RoPE) overrides this.
    /// </summary>
    protected virtual (Tensor Cos, Tensor Sin) RotaryTables(ModelInput input, ScalarType dtype)
    {
        using var positions = input.PositionsOrArange();
        return _rotary.Tables(positions, dtype);
    }

    /// <summary>The token-embedding table (<c>embed_tokens</c>).</summary>
    protected EmbeddingTable EmbedTokensTable => _embedTokens;

    /// <summary>The rotary tables of the stack (for families that build other positions over the same frequencies).</summary>
    protected Rotary Rope => _rotary;

    /// <summary>A family's step after layer <paramref name="index"/> (Qwen3-VL adds its DeepStack features); the default passes <paramref name="h"/> on.</summary>
    protected virtual Tensor AfterLayer(int index, Tensor h, ModelInput input) => h;

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}
