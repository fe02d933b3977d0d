using TokenEmbed.Loading;
using TokenEmbed.Pooling;

namespace TokenEmbed.Models.Architectures;

// NVIDIA's nemotron-colembed-vl (Qwen3VLNemotronEmbedModel), following NVIDIA's published modeling code rather than
// vLLM's mapping onto its causal ColQwen3 path: bidirectional text layers, the hidden state before the final norm (the
// backbone family Qwen3VlNemotron), no projection; token vectors masked and L2-normalized (`pooling: "colbert"`).

/// <summary>Nemotron colembed: every token's pre-norm hidden state, normalized; late interaction.</summary>
internal sealed class NemotronColEmbed(string name) : PoolingArchitecture(name, BackboneFamily.Qwen3VlNemotron, ["lm_head."])
{
    public override Pooler BuildPooler(HeadContext c)
    {
        RejectDenseModules(c, "no projection (Nemotron colembed)");
        var pooling = c.Folder.Config.GetString("pooling", "colbert");
        if (pooling != "colbert")
            throw new ModelLoadException($"'{c.Folder.Config.FilePath}': field 'pooling' is '{pooling}'; only \"colbert\" (token vectors) is supported.", c.Folder.Config.FilePath);
        return new Pooler(c.Backbone.HiddenSize, null, new EmbedPlan(DefaultPooling(c)), isLateInteraction: true);
    }
}
