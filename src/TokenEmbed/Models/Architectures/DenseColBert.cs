using TokenEmbed.Loading;
using TokenEmbed.Models.Heads;
using TokenEmbed.Pooling;

namespace TokenEmbed.Models.Architectures;

// vLLM's override names for PyLate ColBERT checkpoints whose projection is the folder's Dense module chain:
// ColBERTModernBertModel (GTE-ModernColBERT-v1) and ColBERTLfm2Model (LFM2-ColBERT-350M), models/colbert.py.

/// <summary>
/// A ColBERT model whose projection is the folder's sentence-transformers / PyLate Dense chain, which must be present
/// (without it the vectors would silently have the backbone's width).
/// </summary>
internal sealed class DenseColBert(string name, BackboneFamily backbone) : PoolingArchitecture(name, backbone, [])
{
    public override Pooler BuildPooler(HeadContext c)
    {
        if (c.Folder.Dense.Count == 0)
            throw new ModelLoadException(
                $"'{c.Folder.Path}': {Name} is a ColBERT model whose projection is a sentence-transformers / PyLate Dense module " +
                "(modules.json listing e.g. 1_Dense with its config.json and model.safetensors), and the folder has none.", c.Folder.Path);
        var head = ProjectionHead.FromDenseModules(c.Folder.Dense, c.Weights, c.Backbone.HiddenSize, c.Consumed);
        var embed = new EmbedPlan(DefaultPooling(c), head, ProjectPooled: c.Folder.Layout?.PoolingBeforeDense == true);
        return new Pooler(c.Backbone.HiddenSize, head, embed, isLateInteraction: true);
    }
}
