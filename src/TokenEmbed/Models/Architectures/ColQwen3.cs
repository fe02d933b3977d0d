using TokenEmbed.Loading;
using TokenEmbed.Models.Heads;
using TokenEmbed.Pooling;

namespace TokenEmbed.Models.Architectures;

// ColQwen3-style retrieval models over Qwen3-VL, as vLLM's models/colqwen3.py reads them: Tomoro's ColQwen3
// (weights under vlm.model.*, head `embedding_proj_layer`, dim `embed_dim`) and OpenSearch's OpsColQwen3Model (unprefixed,
// head `custom_text_proj` with bias, output sliced to `dims`). TokenEmbed = normalize(head(last hidden state)) per token.

/// <summary>
/// A Qwen3-VL backbone plus a linear token head (<c>custom_text_proj</c> or <c>embedding_proj_layer</c>, bias used when
/// present), its width from the first of <c>embed_dim</c>, <c>dims</c>, <c>dim</c>, <c>projection_dim</c>,
/// <c>colbert_dim</c> (a wider head is sliced to it).
/// </summary>
internal sealed class ColQwen3(string name, params string[] droppedPrefixes) : PoolingArchitecture(name, BackboneFamily.Qwen3Vl, droppedPrefixes)
{
    private static readonly string[] HeadNames = ["custom_text_proj", "embedding_proj_layer"];
    private static readonly string[] DimFields = ["embed_dim", "dims", "dim", "projection_dim", "colbert_dim"];

    public override Pooler BuildPooler(HeadContext c)
    {
        RejectDenseModules(c, "a ColQwen3 projection");
        var key = HeadNames.Select(h => h + ".weight").FirstOrDefault(c.Weights.Contains)
            ?? throw new ModelLoadException(
                $"'{c.Folder.Path}': {Name} needs its projection head ({string.Join(" or ", HeadNames.Select(h => $"'{h}.weight'"))}), and the checkpoint has none.",
                c.Folder.Path, HeadNames[0] + ".weight");
        var config = c.Folder.Config;
        int? dim = DimFields.Where(config.Has).Select(f => (int?)config.GetPositiveInt(f, 1)).FirstOrDefault();
        var head = ProjectionHead.LinearWithOptionalBias(c.Weights, key, c.Backbone.HiddenSize, c.Consumed, dim);
        return new Pooler(c.Backbone.HiddenSize, head, new EmbedPlan(DefaultPooling(c), head), isLateInteraction: true);
    }
}
