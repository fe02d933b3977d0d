using TokenEmbed.Loading;
using TokenEmbed.Models.Heads;
using TokenEmbed.Pooling;

namespace TokenEmbed.Models.Architectures;

// sentence-transformers' SentenceTransformer (and PyLate's ColBERT without a head of its own): a transformers backbone
// followed by the folder's modules.json chain, Pooling, Dense modules and Normalize, as vLLM's pooling adapters read it.

/// <summary>
/// A plain backbone architecture (<c>BertModel</c>, <c>Qwen3Model</c>, …) with the folder's optional sentence-transformers /
/// PyLate modules: Dense modules project tokens (TokenEmbed) and, through the Pooling module, the Embed vector. Without a
/// Pooling module a Dense head makes it a late-interaction (PyLate) model.
/// </summary>
internal sealed class SentenceTransformerModel(string name, BackboneFamily? backbone, params string[] droppedPrefixes)
    : PoolingArchitecture(name, backbone, droppedPrefixes)
{
    public override Pooler BuildPooler(HeadContext c)
    {
        if (BgeM3.HasColBertLinear(c.Folder, c.Weights))
            throw new ModelLoadException(
                $"'{c.Folder.Path}' has BGE-M3's colbert_linear projection, which {Name} does not use. Load it as BGE-M3 with " +
                "LlmOptions.Architecture = \"BgeM3EmbeddingModel\" (vLLM: --hf-overrides '{\"architectures\": [\"BgeM3EmbeddingModel\"]}'), " +
                "or remove the projection.", c.Folder.Path, BgeM3.ColBertLinearWeight);
        var head = c.Folder.Dense.Count > 0 ? ProjectionHead.FromDenseModules(c.Folder.Dense, c.Weights, c.Backbone.HiddenSize, c.Consumed) : null;
        var layout = c.Folder.Layout;
        var embed = new EmbedPlan(DefaultPooling(c), head, ProjectPooled: layout?.PoolingBeforeDense == true);
        return new Pooler(c.Backbone.HiddenSize, head, embed, isLateInteraction: head != null && layout?.Pooling == null);
    }
}
