using TokenEmbed.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.XlmRoberta;

// Port of jinaai/xlm-roberta-flash-implementation modeling_xlm_roberta.py (XLMRobertaModel, create_block /
// create_mixer_cls / create_mlp_cls), embedding.py (XLMRobertaEmbeddings), mha.py (MHA), block.py (Block, prenorm=False),
// mlp.py (Mlp) and rotary.py (RotaryEmbedding, interleaved=False) — the backbone vLLM runs as JinaRobertaModel
// (vllm/model_executor/models/bert_with_rope.py) under ColBERTJinaRobertaModel (colbert.py).
// Math: h = emb_ln(word[ids] + token_type[0]); per block (post-norm):
//   q|k|v = Wqkv(h) split in three hidden-size slices (rows = [Wq; Wk; Wv], heads contiguous within each),
//   rotate-half RoPE on q and k over the first rotary_emb_dim features of each head, positions arange(T) per row,
//   inv_freq = 1 / base^(2i/rotary_dim) in float32; softmax(q·kᵀ/√hd + key padding)·v;
//   h = norm1(h + out_proj(ctx)); h = norm2(h + fc2(gelu(fc1(h)))).
// Field names are the checkpoint names (emb_ln, encoder.layers.N.mixer.Wqkv, …), so loading is a strict 1:1 mapping.

/// <summary><c>XLMRobertaEmbeddings</c> with rotary positions: word + token type 0 (no position table).</summary>
internal sealed class JinaEmbeddings : nn.Module<ModelInput, Tensor>
{
    private readonly EmbeddingTable word_embeddings;
    private readonly EmbeddingTable? token_type_embeddings;

    public JinaEmbeddings(JinaRobertaConfig c) : base("embeddings")
    {
        word_embeddings = Nn.Embedding(c.VocabSize, c.HiddenSize);
        if (c.TypeVocabSize > 0) token_type_embeddings = Nn.Embedding(c.TypeVocabSize, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(ModelInput input)
    {
        var words = input.EmbedTokens(word_embeddings);
        if (token_type_embeddings is null) return words;
        using var tt = token_type_embeddings.Weight[0].view(1, 1, -1);
        using (words) return Ops.Add(words, tt);   // not in place: the words may be the caller's input embeddings
    }
}

/// <summary><c>MHA</c>: fused <c>Wqkv</c>, rotary q/k, scaled dot-product attention, <c>out_proj</c>.</summary>
internal sealed class JinaMha : nn.Module<Tensor, Tensor?, (Tensor Cos, Tensor Sin), Tensor>
{
    private readonly Dense Wqkv;
    private readonly Dense out_proj;
    private readonly int _heads;
    private readonly int _headDim;

    public JinaMha(JinaRobertaConfig c) : base("mixer")
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HeadDim;
        Wqkv = Nn.Linear(c.HiddenSize, 3L * c.HiddenSize);
        out_proj = Nn.Linear(c.HiddenSize, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor? mask, (Tensor Cos, Tensor Sin) rope)
    {
        using var scope = NewDisposeScope();
        var ctx = Attention.FusedQkvRotary(Wqkv.forward(h), _heads, _headDim, mask, t => Rotary.ApplyPartial(t, rope.Cos, rope.Sin));
        return out_proj.forward(ctx).MoveToOuterDisposeScope();
    }
}

/// <summary><c>Block</c> with <c>prenorm=False</c>: <c>norm1(x + mixer(x))</c>, then <c>norm2(h + mlp(h))</c>.</summary>
internal sealed class JinaBlock : nn.Module<Tensor, Tensor?, (Tensor Cos, Tensor Sin), Tensor>
{
    private readonly JinaMha mixer;
    private readonly LayerNorm norm1;
    private readonly FeedForward mlp;   // Jina Mlp: fc2(act(fc1(x)))
    private readonly LayerNorm norm2;

    public JinaBlock(JinaRobertaConfig c) : base("layer")
    {
        mixer = new JinaMha(c);
        norm1 = Nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        mlp = new FeedForward("fc1", "fc2", c.HiddenSize, c.IntermediateSize, c.HiddenAct);
        norm2 = Nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor? mask, (Tensor Cos, Tensor Sin) rope)
    {
        using var attn = mixer.forward(h, mask, rope);
        using var r1 = Ops.AddInPlace(attn, h);
        using var h1 = norm1.forward(r1);
        using var m = mlp.forward(h1);
        using var r2 = Ops.AddInPlace(m, h1);
        return norm2.forward(r2);
    }
}

/// <summary><c>XLMRobertaEncoder</c>: the block stack under <c>encoder.layers</c>.</summary>
internal sealed class JinaEncoder : nn.Module<Tensor, Tensor?, (Tensor Cos, Tensor Sin), Tensor>
{
    private readonly ModuleList<JinaBlock> layers;

    public JinaEncoder(JinaRobertaConfig c) : base("encoder")
    {
        layers = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new JinaBlock(c)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor? mask, (Tensor Cos, Tensor Sin) rope)
    {
        var x = h.alias();
        foreach (var l in layers)
        {
            var next = l.forward(x, mask, rope);
            x.Dispose();
            x = next;
        }
        return x;
    }
}

/// <summary>
/// The Jina XLM-RoBERTa encoder (rotary positions, fused QKV, post-norm) as a backbone; <c>pooler.*</c> is ignored.
/// </summary>
internal sealed class JinaRobertaModel : nn.Module<ModelInput, Tensor>, IBackbone
{
    private readonly JinaEmbeddings embeddings;
    private readonly LayerNorm emb_ln;
    private readonly JinaEncoder encoder;
    private readonly JinaRobertaConfig _config;
    private readonly Rotary _rotary;

    public JinaRobertaModel(JinaRobertaConfig config) : base("JinaRobertaModel")
    {
        _config = config;
        embeddings = new JinaEmbeddings(config);
        emb_ln = Nn.LayerNorm(config.HiddenSize, config.LayerNormEps);
        encoder = new JinaEncoder(config);
        _rotary = new Rotary(config.RotaryDim, config.RotaryBase);
        RegisterComponents();
        eval();
    }

    public int HiddenSize => _config.HiddenSize;
    public int VocabSize => _config.VocabSize;

    /// <summary>max_position_embeddings − pad − 1, as for the absolute-position XLM-R (8194 → 8192, jina's tokenizer limit).</summary>
    public int? MaxPositions => _config.MaxPositionEmbeddings - _config.PadTokenId - 1;

    public bool IsCausal => false;

    /// <summary>Weights Jina checkpoints carry that a pooling model does not use.</summary>
    public static bool IsIgnorable(string nameWithoutPrefix) => nameWithoutPrefix.StartsWith("pooler.", StringComparison.Ordinal);

    public Tensor Forward(ModelInput input) => forward(input);

    public override Tensor forward(ModelInput input)
    {
        using var scope = NewDisposeScope();
        var h = emb_ln.forward(embeddings.forward(input));
        var mask = Attention.KeyPaddingMask(input.AttentionMask, h.dtype);
        // Right padding: by default every row's real tokens sit at 0..len-1, the positions flash-attn's unpadded path gives them.
        var positions = input.PositionsOrArange();
        var (cos, sin) = _rotary.Tables(positions, h.dtype);
        return encoder.forward(h, mask, (cos, sin)).MoveToOuterDisposeScope();
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rotary.Dispose();
        base.Dispose(disposing);
    }
}
