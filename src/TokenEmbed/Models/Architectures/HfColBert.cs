using TokenEmbed.Models.Heads;
using TokenEmbed.Pooling;

namespace TokenEmbed.Models.Architectures;

// colbert-ai's HF_ColBERT (colbert/modeling/hf_colbert.py) as vLLM's models/colbert.py ports it: the backbone from
// config.json's model_type, then `linear` [dim, hidden] without bias on every token. Also vLLM's ColBERTJinaRobertaModel
// (jina-colbert-v2): the same head over Jina's rotary XLM-RoBERTa.

/// <summary>A backbone plus colbert-ai's <c>linear</c> projection (no bias); Embed is CLS of the projected tokens.</summary>
internal sealed class HfColBert(string name, BackboneFamily? backbone = null) : PoolingArchitecture(name, backbone, [])
{
    /// <summary>The projection's weight name.</summary>
    public const string LinearWeight = "linear.weight";

    public override Pooler BuildPooler(HeadContext c)
    {
        RejectDenseModules(c, "a colbert-ai 'linear' head");
        var head = ProjectionHead.ColBertLinear(c.Weights, LinearWeight, c.Backbone.HiddenSize, c.Consumed);
        return new Pooler(c.Backbone.HiddenSize, head, new EmbedPlan(DefaultPooling(c), head), isLateInteraction: true);
    }
}
