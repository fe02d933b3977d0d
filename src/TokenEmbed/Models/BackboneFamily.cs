using TokenEmbed.Loading;
using TokenEmbed.Models.Bert;
using TokenEmbed.Models.Decoder;
using TokenEmbed.Models.Lfm2;
using TokenEmbed.Models.Llama;
using TokenEmbed.Models.ModernBert;
using TokenEmbed.Models.Qwen2;
using TokenEmbed.Models.Qwen3;
using TokenEmbed.Models.Qwen3Vl;
using TokenEmbed.Models.XlmRoberta;

namespace TokenEmbed.Models;

/// <summary>A backbone family: how to build it from config.json and where its weights sit in a checkpoint.</summary>
/// <param name="Name">The family's name (config.json <c>model_type</c> where there is one).</param>
/// <param name="Create">Builds the backbone from config.json.</param>
/// <param name="Prefixes">Weight-name prefixes checkpoints use, tried in order (e.g. "" then "bert.").</param>
/// <param name="ProbeWeight">A weight every checkpoint of the family has, used to pick the prefix.</param>
/// <param name="IsIgnorable">Weights (name after the prefix) a checkpoint may carry that a pooling model does not use.</param>
/// <param name="IsDecoder">
/// A causal decoder: its <c>XModel</c> architectures also accept <c>XForCausalLM</c> checkpoints (weights under
/// <c>model.</c>, <c>lm_head.</c> dropped), vLLM's <c>as_embedding_model</c> conversion.
/// </param>
internal sealed record BackboneFamily(string Name, Func<HfConfig, IBackbone> Create, string[] Prefixes, string ProbeWeight,
    Func<string, bool> IsIgnorable, bool IsDecoder = false)
{
    public static readonly BackboneFamily Bert = new("bert", c => new BertModel(BertConfig.From(c)), ["", "bert."],
        "embeddings.word_embeddings.weight", BertModel.IsIgnorable);

    public static readonly BackboneFamily Roberta = new("roberta", c => new BertModel(BertConfig.FromRoberta(c, defaultVocab: 50265)), ["", "roberta."],
        "embeddings.word_embeddings.weight", BertModel.IsIgnorable);

    public static readonly BackboneFamily XlmRoberta = new("xlm-roberta", c => new BertModel(BertConfig.FromRoberta(c, defaultVocab: 30522)), ["", "roberta."],
        "embeddings.word_embeddings.weight", BertModel.IsIgnorable);

    /// <summary>Jina's flash XLM-RoBERTa (rotary positions, fused Wqkv): jina-colbert-v2's backbone.</summary>
    public static readonly BackboneFamily JinaRoberta = new("jina-xlm-roberta", c => new JinaRobertaModel(JinaRobertaConfig.From(c)), ["", "roberta."],
        "embeddings.word_embeddings.weight", JinaRobertaModel.IsIgnorable);

    public static readonly BackboneFamily ModernBert = new("modernbert", c => new ModernBertModel(ModernBertConfig.From(c)), ["", "model."],
        "embeddings.tok_embeddings.weight", ModernBertModel.IsIgnorable);

    public static readonly BackboneFamily Qwen3 = Decoder("qwen3", c => new Qwen3Model(c));
    public static readonly BackboneFamily Qwen2 = Decoder("qwen2", c => new Qwen2Model(c));
    public static readonly BackboneFamily Llama = Decoder("llama", c => new LlamaModel(c));
    public static readonly BackboneFamily Lfm2 = Decoder("lfm2", c => new Lfm2Model(c));

    /// <summary>
    /// Qwen3-VL (vision tower + Qwen3 text decoder): <c>visual.*</c> and <c>language_model.*</c>, unprefixed (Qwen3VLModel,
    /// OpsColQwen3), under <c>model.</c> (Qwen3VLForConditionalGeneration, Nemotron) or <c>vlm.model.</c> (Tomoro ColQwen3).
    /// </summary>
    public static readonly BackboneFamily Qwen3Vl = new("qwen3_vl", c => new Qwen3VlModel(Qwen3VlConfig.From(c)), ["", "model.", "vlm.model."],
        "language_model.embed_tokens.weight", Qwen3VlModel.IsIgnorable, IsDecoder: true);

    /// <summary>
    /// NVIDIA's Nemotron colembed (<c>Qwen3VLNemotronEmbedModel</c>, model_type <c>qwen3_vl_nemotron_embed</c>): Qwen3-VL whose text
    /// layers run bidirectionally and whose output is the last layer's, before the final norm — what NVIDIA's published
    /// modeling code does (<c>self_attn.is_causal = False</c>; "skip self.norm()").
    /// </summary>
    public static readonly BackboneFamily Qwen3VlNemotron = Qwen3Vl with
    {
        Name = "qwen3_vl_nemotron_embed",
        Create = c =>
        {
            var config = Qwen3VlConfig.From(c);
            return new Qwen3VlModel(config with { Text = config.Text with { Bidirectional = true, SkipFinalNorm = true } });
        },
    };

    /// <summary>The families config.json's <c>model_type</c> names.</summary>
    public static readonly IReadOnlyDictionary<string, BackboneFamily> ByModelType =
        new[] { Bert, Roberta, XlmRoberta, ModernBert, Qwen3, Qwen2, Llama, Lfm2, Qwen3Vl }.ToDictionary(f => f.Name, StringComparer.Ordinal)
            .Append(new KeyValuePair<string, BackboneFamily>("ops_colqwen3", Qwen3Vl))
            .Append(new KeyValuePair<string, BackboneFamily>(Qwen3VlNemotron.Name, Qwen3VlNemotron)).ToDictionary(StringComparer.Ordinal);

    /// <summary>
    /// The family that really implements <paramref name="config"/>: an <c>xlm-roberta</c> config with
    /// <c>position_embedding_type: rotary</c> is Jina's implementation (jina-colbert-v2 ships as model_type xlm-roberta).
    /// This is the only config-dependent choice of backbone.
    /// </summary>
    public BackboneFamily For(HfConfig config) =>
        ReferenceEquals(this, XlmRoberta) && config.GetString("position_embedding_type", "absolute") is "rotary" or "rope" ? JinaRoberta : this;

    /// <summary>The family of config.json's <c>model_type</c>; an unknown or missing one fails naming the supported types.</summary>
    public static BackboneFamily OfModelType(HfConfig config, string architecture)
    {
        var modelType = config.ModelType
            ?? throw new ModelLoadException($"'{config.FilePath}': architecture '{architecture}' takes its backbone from model_type, which is missing.", config.FilePath);
        return ByModelType.TryGetValue(modelType, out var family)
            ? family
            : throw new ModelLoadException($"'{config.FilePath}': architecture '{architecture}' over model_type '{modelType}' is not supported. " +
                                           $"Supported model types: {string.Join(", ", ByModelType.Keys)}.", config.FilePath);
    }

    /// <summary>A decoder family: weights unprefixed (<c>XModel</c>) or under <c>model.</c> (<c>XForCausalLM</c>).</summary>
    private static BackboneFamily Decoder(string modelType, Func<HfConfig, IBackbone> create) =>
        new(modelType, create, ["", "model."], "embed_tokens.weight", DecoderModel.IsIgnorable, IsDecoder: true);
}
