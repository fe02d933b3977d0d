using System.Collections.Concurrent;
using TokenEmbed.Loading;
using TokenEmbed.Models.Architectures;

namespace TokenEmbed.Models;

/// <summary>
/// config.json <c>architectures</c> name → architecture class, in one table. Adding a ColBERT variant over an existing
/// backbone is one class in <c>Architectures/</c> plus one line here (docs/ADDING_A_MODEL.md).
/// </summary>
internal static class ModelRegistry
{
    private static readonly PoolingArchitecture[] Table =
    [
        new SentenceTransformerModel("BertModel", BackboneFamily.Bert),
        new SentenceTransformerModel("BertForMaskedLM", BackboneFamily.Bert, "cls."),
        new SentenceTransformerModel("BertForPreTraining", BackboneFamily.Bert, "cls."),
        new SentenceTransformerModel("RobertaModel", BackboneFamily.Roberta),
        new SentenceTransformerModel("RobertaForMaskedLM", BackboneFamily.Roberta, "lm_head."),
        new SentenceTransformerModel("XLMRobertaModel", BackboneFamily.XlmRoberta),
        new SentenceTransformerModel("XLMRobertaForMaskedLM", BackboneFamily.XlmRoberta, "lm_head."),
        new SentenceTransformerModel("ModernBertModel", BackboneFamily.ModernBert),
        // MLM checkpoints: model.* + the prediction head and decoder (bias; weight tied to the embeddings), dropped for pooling.
        new SentenceTransformerModel("ModernBertForMaskedLM", BackboneFamily.ModernBert, "head.", "decoder."),
        new SentenceTransformerModel("Qwen3Model", BackboneFamily.Qwen3),
        new SentenceTransformerModel("Qwen2Model", BackboneFamily.Qwen2),
        new SentenceTransformerModel("LlamaModel", BackboneFamily.Llama),
        new SentenceTransformerModel("Lfm2Model", BackboneFamily.Lfm2),
        // Qwen3-VL as a pooling model (vLLM's --convert embed of a VLM): every token's last hidden state, image tokens included.
        new SentenceTransformerModel("Qwen3VLModel", BackboneFamily.Qwen3Vl),
        new SentenceTransformerModel("Qwen3VLForConditionalGeneration", BackboneFamily.Qwen3Vl, "lm_head."),
        new HfColBert("HF_ColBERT"),
        new HfColBert("ColBERTJinaRobertaModel", BackboneFamily.JinaRoberta),
        new DenseColBert("ColBERTModernBertModel", BackboneFamily.ModernBert),
        new DenseColBert("ColBERTLfm2Model", BackboneFamily.Lfm2),
        new BgeM3("BgeM3EmbeddingModel"),
        new ColQwen3("ColQwen3", "vlm.lm_head.", "lm_head."),
        new ColQwen3("OpsColQwen3Model"),
        new NemotronColEmbed("Qwen3VLNemotronEmbedModel"),
    ];

    private static readonly ConcurrentDictionary<string, PoolingArchitecture> Entries = new(WithCausalLmConversions(Table), StringComparer.Ordinal);

    /// <summary>
    /// vLLM's suffix rule: for every plain decoder architecture <c>XModel</c>, <c>XForCausalLM</c> is the same pooling model
    /// with the LM head dropped (present, or absent when tied to the embeddings).
    /// </summary>
    private static Dictionary<string, PoolingArchitecture> WithCausalLmConversions(IEnumerable<PoolingArchitecture> table)
    {
        var all = new Dictionary<string, PoolingArchitecture>(StringComparer.Ordinal);
        foreach (var a in table)
        {
            if (!all.TryAdd(a.Name, a)) throw new InvalidOperationException($"Architecture '{a.Name}' is registered twice.");
        }
        foreach (var a in table)
        {
            if (a is SentenceTransformerModel && a.Backbone is { IsDecoder: true } && a.Name.EndsWith("Model", StringComparison.Ordinal))
            {
                var causal = a.Name[..^"Model".Length] + "ForCausalLM";
                all.TryAdd(causal, a.Renamed(causal, ["lm_head."]));
            }
        }
        return all;
    }

    /// <summary>The supported architecture names.</summary>
    public static IReadOnlyCollection<string> SupportedArchitectures => Entries.Keys.ToArray();

    /// <summary>
    /// The architecture for a config.json (or <paramref name="overrideName"/>, vLLM's <c>hf_overrides</c> architectures);
    /// unknown names fail with the supported list.
    /// </summary>
    public static PoolingArchitecture Resolve(HfConfig config, string? overrideName = null)
    {
        if (overrideName != null)
            return Entries.TryGetValue(overrideName, out var chosen) ? chosen : throw new ModelLoadException(
                $"LlmOptions.Architecture '{overrideName}' is not supported. Supported architectures: {string.Join(", ", Entries.Keys.Order(StringComparer.Ordinal))}.",
                config.FilePath);
        var archs = config.Architectures;
        if (archs.Count == 0)
        {
            // No architectures field: the plain backbone of model_type, as transformers' AutoModel does.
            if (config.ModelType is { } mt && BackboneFamily.ByModelType.TryGetValue(mt, out var family))
                return new SentenceTransformerModel(mt, family);
            throw new ModelLoadException($"'{config.FilePath}' names no architectures and model_type '{config.ModelType}' is not supported. " +
                                         $"Supported model types: {string.Join(", ", BackboneFamily.ByModelType.Keys)}.", config.FilePath);
        }
        foreach (var a in archs)
            if (Entries.TryGetValue(a, out var entry)) return entry;
        throw new ModelLoadException(
            $"'{config.FilePath}': architecture {string.Join(", ", archs.Select(x => $"'{x}'"))} is not supported. " +
            $"Supported architectures: {string.Join(", ", Entries.Keys.Order(StringComparer.Ordinal))}.", config.FilePath);
    }

    /// <summary>Adds an architecture (tests register sample variants this way); a name already taken is an error.</summary>
    internal static void Register(PoolingArchitecture architecture)
    {
        if (!Entries.TryAdd(architecture.Name, architecture))
            throw new InvalidOperationException($"Architecture '{architecture.Name}' is registered already.");
    }
}
