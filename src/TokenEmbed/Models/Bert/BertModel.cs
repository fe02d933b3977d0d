using TokenEmbed.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Bert;

// Port of transformers 5.17 models/bert/modeling_bert.py (BertModel without the pooler: pooling is ours), and of
// models/roberta/modeling_roberta.py + models/xlm_roberta/modeling_xlm_roberta.py, which are the same encoder with
// padding-aware position ids (RobertaEmbeddings.create_position_ids_from_input_ids); see BertPositions.
// Field names are the state-dict names, so loading is a strict 1:1 mapping.

/// <summary>How the embeddings number positions: the only difference between the BERT and RoBERTa encoders.</summary>
internal enum BertPositions
{
    /// <summary>BERT: <c>arange(T)</c> for every row.</summary>
    Absolute,

    /// <summary>
    /// RoBERTa / XLM-R: <c>m = ids != pad</c>, <c>pos = cumsum(m)·m + pad</c>, so real tokens count from <c>pad + 1</c> and
    /// pad tokens sit at <c>pad</c> (the table's padding_idx).
    /// </summary>
    PaddingOffset,
}

/// <summary><c>BertEmbeddings</c> / <c>RobertaEmbeddings</c>: word + position + token type embeddings, then LayerNorm.</summary>
internal sealed class BertEmbeddings : nn.Module<Tensor, Tensor?, Tensor, Tensor>
{
    private readonly EmbeddingTable word_embeddings;
    private readonly EmbeddingTable position_embeddings;
    private readonly EmbeddingTable token_type_embeddings;
    private readonly LayerNorm LayerNorm;
    private readonly BertPositions _positions;
    private readonly int _pad;

    public BertEmbeddings(BertConfig c) : base("embeddings")
    {
        _positions = c.Positions;
        _pad = c.PadTokenId;
        word_embeddings = Nn.Embedding(c.VocabSize, c.HiddenSize);
        position_embeddings = Nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        token_type_embeddings = Nn.Embedding(c.TypeVocabSize, c.HiddenSize);
        LayerNorm = Nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    /// <summary>
    /// RoBERTa position ids [B, T]: <c>m = (ids != pad)</c>, <c>cumsum(m)·m + pad</c>. Positions the attention mask marks as
    /// padding are also counted as pad, whatever id the batcher padded with; on real tokens this is transformers' formula.
    /// </summary>
    public static Tensor PaddingOffsetPositionIds(Tensor inputIds, Tensor? attentionMask, int pad)
    {
        using var scope = NewDisposeScope();
        var m = inputIds.ne(Ops.L(pad));
        if (attentionMask is not null) m = m.logical_and(attentionMask.ne(Ops.L(0)));
        var mi = m.to(ScalarType.Int64);
        var pos = mi.cumsum(1, ScalarType.Int64).mul_(mi).add_(Ops.L(pad), Ops.One);
        return pos.MoveToOuterDisposeScope();
    }

    public override Tensor forward(Tensor inputIds, Tensor? tokenTypeIds, Tensor attentionMask) =>
        Forward(new ModelInput(inputIds, attentionMask), tokenTypeIds);

    /// <summary>The embeddings of a batch: its positions and input embeddings when given, else computed from the ids.</summary>
    public Tensor Forward(ModelInput input, Tensor? tokenTypeIds)
    {
        using var positions = input.PositionIds is not null || _positions == BertPositions.Absolute
            ? input.PositionsOrArange()
            // transformers' formula on the ids alone: unattended tokens that are not padding (PyLate's query expansion)
            // keep their positions; the engine pads with pad_token_id.
            : PaddingOffsetPositionIds(input.InputIds, null, _pad);
        using var words = input.EmbedTokens(word_embeddings);
        using var pos = position_embeddings.forward(positions);
        using var tt = tokenTypeIds is null
            ? token_type_embeddings.Weight[0].view(1, 1, -1).alias()
            : token_type_embeddings.forward(tokenTypeIds);
        using var sum = Ops.Add(words, tt);
        using var sum2 = Ops.AddInPlace(sum, pos);
        return LayerNorm.forward(sum2);
    }
}

/// <summary><c>BertSelfAttention</c>: query/key/value projections and multi-head attention.</summary>
internal sealed class BertSelfAttention : nn.Module<Tensor, Tensor?, Tensor>, IFusable
{
    private readonly Dense query;
    private readonly Dense key;
    private readonly Dense value;
    private readonly int _heads;
    private readonly int _headDim;

    public BertSelfAttention(BertConfig c) : base("self")
    {
        _heads = c.NumAttentionHeads;
        _headDim = c.HiddenSize / c.NumAttentionHeads;
        query = Nn.Linear(c.HiddenSize, c.HiddenSize);
        key = Nn.Linear(c.HiddenSize, c.HiddenSize);
        value = Nn.Linear(c.HiddenSize, c.HiddenSize);
        _qkv = new FusedProjection(query, key, value);
        RegisterComponents();
    }

    private readonly FusedProjection _qkv;

    /// <inheritdoc />
    public void Fuse() => _qkv.Fuse();

    public override Tensor forward(Tensor h, Tensor? mask)
    {
        using var qkv = _qkv.Forward(h);   // one GEMM for Q, K and V
        return Attention.FusedQkv(qkv, _heads, _headDim, mask);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) _qkv.Dispose();
        base.Dispose(disposing);
    }
}

/// <summary>A dense projection, residual add and LayerNorm (<c>BertSelfOutput</c> and <c>BertOutput</c>).</summary>
internal sealed class BertResidualOutput : nn.Module<Tensor, Tensor, Tensor>
{
    private readonly Dense dense;
    private readonly LayerNorm LayerNorm;

    public BertResidualOutput(int inFeatures, BertConfig c) : base("output")
    {
        dense = Nn.Linear(inFeatures, c.HiddenSize);
        LayerNorm = Nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor residual) => dense.Forward(x, new Epilogue(residual, Norm: LayerNorm));
}

/// <summary><c>BertAttention</c>: self-attention then its output block.</summary>
internal sealed class BertAttention : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig c) : base("attention")
    {
        self = new BertSelfAttention(c);
        output = new BertResidualOutput(c.HiddenSize, c);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor? mask)
    {
        using var ctx = self.forward(h, mask);
        return output.forward(ctx, h);
    }
}

/// <summary><c>BertIntermediate</c>: dense then activation.</summary>
internal sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly Dense dense;
    private readonly Activation _act;

    public BertIntermediate(BertConfig c) : base("intermediate")
    {
        dense = Nn.Linear(c.HiddenSize, c.IntermediateSize);
        _act = Activations.Find(c.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h) => dense.Forward(h, new Epilogue(Activation: _act));
}

/// <summary><c>BertLayer</c> (post-LN).</summary>
internal sealed class BertLayer : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig c) : base("layer")
    {
        attention = new BertAttention(c);
        intermediate = new BertIntermediate(c);
        output = new BertResidualOutput(c.IntermediateSize, c);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor? mask)
    {
        using var a = attention.forward(h, mask);
        using var i = intermediate.forward(a);
        return output.forward(i, a);
    }
}

/// <summary><c>BertEncoder</c>: the layer stack.</summary>
internal sealed class BertEncoder : nn.Module<Tensor, Tensor?, Tensor>
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c) : base("encoder")
    {
        layer = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new BertLayer(c)).ToArray());
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, Tensor? mask)
    {
        var x = h.alias();
        foreach (var l in layer)
        {
            var next = l.forward(x, mask);
            x.Dispose();
            x = next;
        }
        return x;
    }
}

/// <summary>
/// <c>BertModel</c> as a backbone: embeddings and encoder (the pooler's weights are ignored). With
/// <see cref="BertPositions.PaddingOffset"/> it is transformers' <c>RobertaModel</c> / <c>XLMRobertaModel</c>.
/// </summary>
internal sealed class BertModel : nn.Module<Tensor, Tensor, Tensor?, Tensor>, IBackbone
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private readonly BertConfig _config;

    public BertModel(BertConfig config) : base("BertModel")
    {
        _config = config;
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        RegisterComponents();
        eval();
    }

    public int HiddenSize => _config.HiddenSize;
    public int VocabSize => _config.VocabSize;
    /// <summary>
    /// The position table's rows; RoBERTa spends <c>pad + 1</c> of them (positions count from <c>pad + 1</c>), so
    /// 514 rows with pad 1 give 512 tokens.
    /// </summary>
    public int? MaxPositions => _config.Positions == BertPositions.PaddingOffset
        ? _config.MaxPositionEmbeddings - _config.PadTokenId - 1
        : _config.MaxPositionEmbeddings;
    public bool IsCausal => false;

    /// <summary>
    /// Every product is a linear kernel's (widths multiples of 32, GELU, residual and LayerNorm fused) and attention the
    /// attention kernel's (head size a multiple of 16); the embeddings are the rest.
    /// </summary>
    public bool RunsOnKernels => _config.HiddenSize % 32 == 0 && _config.IntermediateSize % 32 == 0 && _config.HiddenAct == "gelu"
                                 && _config.HiddenSize % _config.NumAttentionHeads == 0 && _config.HiddenSize / _config.NumAttentionHeads % 16 == 0;

    /// <summary>RoBERTa positions count the ids that are not <c>pad_token_id</c>, so padding must use it.</summary>
    public int? PaddingId => _config.Positions == BertPositions.PaddingOffset ? _config.PadTokenId : null;

    /// <summary>Weights that BERT checkpoints carry and a pooling model does not use.</summary>
    public static bool IsIgnorable(string nameWithoutPrefix) =>
        nameWithoutPrefix.StartsWith("pooler.", StringComparison.Ordinal)
        || nameWithoutPrefix == "embeddings.position_ids";

    public Tensor Forward(ModelInput input) => Forward(input, null);

    /// <summary>The full forward with explicit token type ids (the engine passes none: all zero, as vLLM and HF do).</summary>
    public override Tensor forward(Tensor inputIds, Tensor attentionMask, Tensor? tokenTypeIds) =>
        Forward(new ModelInput(inputIds, attentionMask), tokenTypeIds);

    private Tensor Forward(ModelInput input, Tensor? tokenTypeIds)
    {
        using var h = embeddings.Forward(input, tokenTypeIds);
        using var mask = input.FullyAttended ? null : Attention.KeyPaddingMask(input.AttentionMask, h.dtype);
        return encoder.forward(h, mask);
    }
}
