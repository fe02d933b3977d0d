using TokenEmbed.Loading;
using TokenEmbed.Models.Bert;
using TokenEmbed.Models.Decoder;
using TokenEmbed.Models.Lfm2;
using TokenEmbed.Models.Llama;
using TokenEmbed.Models.ModernBert;
using TokenEmbed.Models.XlmRoberta;
using TokenEmbed.Models.Qwen2;
using TokenEmbed.Models.Qwen3;

namespace TokenEmbed.Models;

/// <summary>A backbone family, keyed by config.json's <c>model_type</c>.</summary>
/// <param name="ModelType">config.json <c>model_type</c>.</param>
/// <param name="Create">Builds the backbone from config.json.</param>
/// <param name="Prefixes">Weight-name prefixes checkpoints use, tried in order (e.g. "" then "bert.").</param>
/// <param name="ProbeWeight">A weight every checkpoint of the family has, used to pick the prefix.</param>
/// <param name="IsIgnorable">Weights (name after the prefix) a checkpoint may carry that a pooling model does not use.</param>
/// <param name="IsDecoder">
/// A causal decoder: its <c>XModel</c> entries also accept <c>XForCausalLM</c> checkpoints (weights under <c>model.</c>,
/// <c>lm_head.</c> dropped), vLLM's <c>as_embedding_model</c> conversion. Embed pools the LAST token by default.
/// </param>
internal sealed record BackboneFamily(string ModelType, Func<HfConfig, IBackbone> Create, string[] Prefixes, string ProbeWeight, Func<string, bool> IsIgnorable, bool IsDecoder = false);

/// <summary>The head an architecture carries on top of its backbone.</summary>
internal enum HeadKind
{
    /// <summary>No head of its own (a sentence-transformers Dense chain may still apply).</summary>
    None,
    /// <summary>colbert-ai's <c>linear.weight</c> [dim, hidden], no bias.</summary>
    ColBertLinear,

    /// <summary>
    /// BGE-M3 (vLLM's <c>BgeM3EmbeddingModel</c>): <c>colbert_linear</c> [dim, hidden] + bias for TokenEmbed only, the
    /// BOS vector dropped; Embed stays CLS of the backbone. Required here; found automatically on plain XLM-R folders.
    /// </summary>
    BgeM3ColBert,

    /// <summary>
    /// A ColBERT variant whose projection is the folder's sentence-transformers / PyLate Dense chain (<c>1_Dense</c>, …),
    /// which must be present (vLLM's <c>ColBERT*Model</c> override names).
    /// </summary>
    DenseModules,
}

/// <summary>A registry entry: what an <c>architectures</c> name in config.json means.</summary>
/// <param name="Architecture">The name in config.json.</param>
/// <param name="ModelType">The backbone family, or null to take config.json's <c>model_type</c> (HF_ColBERT).</param>
/// <param name="Head">The architecture's own head.</param>
/// <param name="DroppedPrefixes">Whole-checkpoint weight prefixes dropped for pooling (MLM heads, <c>lm_head.</c>).</param>
internal sealed record ArchitectureEntry(string Architecture, string? ModelType, HeadKind Head, string[] DroppedPrefixes);

/// <summary>Architecture name → how to build the pooling model. Adding an architecture is one entry.</summary>
internal static class ModelRegistry
{
    private static readonly Dictionary<string, BackboneFamily> Families = new(StringComparer.Ordinal)
    {
        ["bert"] = new("bert", c => new BertModel(BertConfig.From(c)), ["", "bert."], "embeddings.word_embeddings.weight", BertModel.IsIgnorable),
        ["modernbert"] = new("modernbert", c => new ModernBertModel(ModernBertConfig.From(c)), ["", "model."], "embeddings.tok_embeddings.weight", ModernBertModel.IsIgnorable),
        ["roberta"] = new("roberta", c => new BertModel(BertConfig.FromRoberta(c, defaultVocab: 50265)), ["", "roberta."],
            "embeddings.word_embeddings.weight", BertModel.IsIgnorable),
        // XLM-R configs with rotary positions are Jina's flash implementation (jina-colbert-v2 ships as model_type xlm-roberta).
        ["xlm-roberta"] = new("xlm-roberta",
            c => IsRotary(c) ? new JinaRobertaModel(JinaRobertaConfig.From(c)) : new BertModel(BertConfig.FromRoberta(c, defaultVocab: 30522)),
            ["", "roberta."], "embeddings.word_embeddings.weight", BertModel.IsIgnorable),
        // Not a config model_type: the backbone of the ColBERTJinaRobertaModel architecture, rotary whatever the config says.
        [JinaFamily] = new(JinaFamily, c => new JinaRobertaModel(JinaRobertaConfig.From(c)), ["", "roberta."],
            "embeddings.word_embeddings.weight", JinaRobertaModel.IsIgnorable),
        ["qwen3"] = Decoder("qwen3", c => new Qwen3Model(c)),
        ["qwen2"] = Decoder("qwen2", c => new Qwen2Model(c)),
        ["llama"] = Decoder("llama", c => new LlamaModel(c)),
        ["lfm2"] = Decoder("lfm2", c => new Lfm2Model(c)),
    };

    private const string JinaFamily = "jina-xlm-roberta";

    private static bool IsRotary(HfConfig c) => c.GetString("position_embedding_type", "absolute") is "rotary" or "rope";

    private static readonly Dictionary<string, ArchitectureEntry> Entries = WithCausalLmConversions(
    [
        new ArchitectureEntry("BertModel", "bert", HeadKind.None, []),
        new ArchitectureEntry("BertForMaskedLM", "bert", HeadKind.None, ["cls."]),
        new ArchitectureEntry("BertForPreTraining", "bert", HeadKind.None, ["cls."]),
        new ArchitectureEntry("HF_ColBERT", null, HeadKind.ColBertLinear, []),
        new ArchitectureEntry("Qwen3Model", "qwen3", HeadKind.None, []),
        new ArchitectureEntry("Qwen2Model", "qwen2", HeadKind.None, []),
        new ArchitectureEntry("LlamaModel", "llama", HeadKind.None, []),
        new ArchitectureEntry("Lfm2Model", "lfm2", HeadKind.None, []),
        new ArchitectureEntry("ColBERTLfm2Model", "lfm2", HeadKind.DenseModules, []),
        new ArchitectureEntry("ModernBertModel", "modernbert", HeadKind.None, []),
        // MLM checkpoints: model.* + the prediction head and decoder (bias; weight tied to the embeddings), dropped for pooling.
        new ArchitectureEntry("ModernBertForMaskedLM", "modernbert", HeadKind.None, ["head.", "decoder."]),
        // vLLM's override name for ModernBERT ColBERT models (GTE-ModernColBERT-v1): the head is the folder's Dense modules.
        new ArchitectureEntry("ColBERTModernBertModel", "modernbert", HeadKind.DenseModules, []),
        new ArchitectureEntry("RobertaModel", "roberta", HeadKind.None, []),
        new ArchitectureEntry("RobertaForMaskedLM", "roberta", HeadKind.None, ["lm_head."]),
        new ArchitectureEntry("XLMRobertaModel", "xlm-roberta", HeadKind.None, []),
        new ArchitectureEntry("XLMRobertaForMaskedLM", "xlm-roberta", HeadKind.None, ["lm_head."]),
        new ArchitectureEntry("ColBERTJinaRobertaModel", JinaFamily, HeadKind.ColBertLinear, []),
        new ArchitectureEntry("BgeM3EmbeddingModel", "xlm-roberta", HeadKind.BgeM3ColBert, []),
    ]);

    /// <summary>A decoder family: weights unprefixed (<c>XModel</c>) or under <c>model.</c> (<c>XForCausalLM</c>).</summary>
    private static BackboneFamily Decoder(string modelType, Func<HfConfig, IBackbone> create) =>
        new(modelType, create, ["", "model."], "embed_tokens.weight", DecoderModel.IsIgnorable, IsDecoder: true);

    /// <summary>
    /// vLLM's suffix rule: for every plain decoder entry <c>XModel</c>, <c>XForCausalLM</c> is the same pooling model
    /// with the LM head dropped (present, or absent when tied to the embeddings).
    /// </summary>
    private static Dictionary<string, ArchitectureEntry> WithCausalLmConversions(ArchitectureEntry[] entries)
    {
        var all = entries.ToDictionary(e => e.Architecture, StringComparer.Ordinal);
        foreach (var e in entries)
        {
            if (e.Head != HeadKind.None || e.ModelType is not { } mt || !Families[mt].IsDecoder || !e.Architecture.EndsWith("Model", StringComparison.Ordinal))
                continue;
            var causal = e.Architecture[..^"Model".Length] + "ForCausalLM";
            all.TryAdd(causal, e with { Architecture = causal, DroppedPrefixes = [.. e.DroppedPrefixes, "lm_head."] });
        }
        return all;
    }

    /// <summary>The supported architecture names.</summary>
    public static IReadOnlyCollection<string> SupportedArchitectures => Entries.Keys;

    /// <summary>The entry and backbone family for a config.json; unknown names fail with the supported list.</summary>
    public static (ArchitectureEntry Entry, BackboneFamily Family) Resolve(HfConfig config)
    {
        var archs = config.Architectures;
        if (archs.Count == 0)
        {
            // No architectures field: fall back to the plain backbone of model_type, as transformers' AutoModel does.
            if (config.ModelType is { } mt && Families.TryGetValue(mt, out var fam))
                return (new ArchitectureEntry(mt, mt, HeadKind.None, []), fam);
            throw new ModelLoadException($"'{config.FilePath}' names no architectures and model_type '{config.ModelType}' is not supported. " +
                                         $"Supported model types: {string.Join(", ", Families.Keys)}.", config.FilePath);
        }
        foreach (var a in archs)
        {
            if (!Entries.TryGetValue(a, out var entry)) continue;
            var modelType = entry.ModelType ?? config.ModelType
                ?? throw new ModelLoadException($"'{config.FilePath}': architecture '{a}' takes its backbone from model_type, which is missing.", config.FilePath);
            if (!Families.TryGetValue(modelType, out var family))
                throw new ModelLoadException($"'{config.FilePath}': architecture '{a}' over model_type '{modelType}' is not supported. " +
                                             $"Supported model types: {string.Join(", ", Families.Keys)}.", config.FilePath);
            return (entry, family);
        }
        throw new ModelLoadException(
            $"'{config.FilePath}': architecture {string.Join(", ", archs.Select(x => $"'{x}'"))} is not supported. " +
            $"Supported architectures: {string.Join(", ", Entries.Keys.Order(StringComparer.Ordinal))}.", config.FilePath);
    }
}
