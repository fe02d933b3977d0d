using TokenEmbed.Loading;
using TokenEmbed.Models.Heads;
using TokenEmbed.Pooling;

namespace TokenEmbed.Models.Architectures;

// vLLM's BgeM3EmbeddingModel (models/roberta.py, pooler in models/bge_m3.py): XLM-RoBERTa; TokenEmbed is colbert_linear
// (with bias) over every token but the first, whose <s> vector BOSEOSFilter drops; Embed is the CLS hidden state.
// FlagEmbedding's sparse_linear (lexical weights) is not a task here and is ignored.

/// <summary>BGE-M3: Embed = CLS of the backbone; TokenEmbed = <c>colbert_linear</c> + bias, the <c>&lt;s&gt;</c> vector dropped.</summary>
internal sealed class BgeM3(string name) : PoolingArchitecture(name, BackboneFamily.XlmRoberta, [])
{
    /// <summary>The file <c>colbert_linear</c> may come in, converted from FlagEmbedding's <c>colbert_linear.pt</c>.</summary>
    public const string ColBertLinearFile = "colbert_linear.safetensors";

    /// <summary>The projection's weight name in the checkpoint.</summary>
    public const string ColBertLinearWeight = "colbert_linear.weight";

    public override Pooler BuildPooler(HeadContext c)
    {
        RejectDenseModules(c, "a colbert_linear projection");
        var key = ColBertLinearKey(c.Folder, c.Weights) ?? throw new ModelLoadException(
            $"'{c.Folder.Path}': {Name} needs the colbert_linear projection, as '{ColBertLinearWeight}' in the checkpoint or " +
            $"'{ColBertLinearFile}' (weight/bias) beside it; a colbert_linear.pt must be converted to safetensors first.",
            c.Folder.Path, ColBertLinearWeight);
        var head = ProjectionHead.LinearWithOptionalBias(c.Weights, key, c.Backbone.HiddenSize, c.Consumed);
        var bos = c.Folder.Config.GetInt("bos_token_id", 0);
        // Score stays cosine of the dense (Embed) vectors, as vLLM scores BGE-M3.
        return new Pooler(c.Backbone.HiddenSize, head, new EmbedPlan(DefaultPooling(c)), isLateInteraction: false,
            tokenFilter: ids => ids[0] == bos ? [false, .. Enumerable.Repeat(true, ids.Count - 1)] : null);
    }

    public override bool IsIgnorable(string weightName) => weightName.StartsWith("sparse_linear.", StringComparison.Ordinal);

    /// <summary>Whether the folder carries a colbert_linear projection (in the checkpoint or beside it).</summary>
    public static bool HasColBertLinear(ModelFolder folder, WeightSet weights) =>
        weights.Contains(ColBertLinearWeight) || File.Exists(folder.File(ColBertLinearFile));

    /// <summary>
    /// The key of <c>colbert_linear</c>'s weight: in the checkpoint, or <c>weight</c> (or <c>colbert_linear.weight</c>) in
    /// <see cref="ColBertLinearFile"/>, which is then added to the set. Null when there is none.
    /// </summary>
    private static string? ColBertLinearKey(ModelFolder folder, WeightSet weights)
    {
        var inCheckpoint = weights.Contains(ColBertLinearWeight) ? ColBertLinearWeight : null;
        var file = FolderPaths.Inside(folder.Path, ColBertLinearFile);
        if (!File.Exists(file)) return inCheckpoint;
        if (inCheckpoint != null)
            throw new ModelLoadException($"'{folder.Path}' has colbert_linear both in its checkpoint and in '{ColBertLinearFile}'.", file, inCheckpoint);
        const string prefix = "colbert_linear/";
        weights.AddFile(file, prefix);
        return new[] { prefix + "weight", prefix + ColBertLinearWeight }.FirstOrDefault(weights.Contains)
            ?? throw new ModelLoadException($"'{file}' has no 'weight' (nor '{ColBertLinearWeight}').", file, prefix + "weight");
    }
}
