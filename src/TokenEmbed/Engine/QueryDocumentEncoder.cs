using System.Text.Json;
using TokenEmbed.Loading;
using TokenEmbed.Models;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Engine;

// PyLate's ColBERT.tokenize / encode (pylate/models/colbert.py): settings from config_sentence_transformers.json, or for
// Stanford colbert-ai checkpoints from artifact.metadata, else PyLate's defaults (with [unused0] / [unused1] prefixes, as
// colbert-ai's models use). A query or document is tokenized with its special tokens, truncated (tail) to its length minus
// one when a prefix is used, the prefix id inserted after the first token; queries are padded to that length with the
// mask token (decoders: EOS), attended only with attend_to_expansion_tokens, and keep every vector; documents drop the
// vectors of skiplist tokens (a skiplist word that is not a vocabulary token stands for the unknown token, as
// convert_tokens_to_ids maps it).

/// <summary>The resolved query / document settings of a model folder.</summary>
/// <param name="QueryPrefixId">The query prefix token inserted after the first token, or null for none.</param>
/// <param name="DocumentPrefixId">The document prefix token, or null for none.</param>
/// <param name="QueryLength">Queries' length (prefix included).</param>
/// <param name="DocumentLength">Documents' most tokens (prefix included).</param>
/// <param name="DoQueryExpansion">Whether queries are padded to their length with <paramref name="ExpansionId"/>.</param>
/// <param name="AttendToExpansionTokens">Whether the expansion tokens are attended.</param>
/// <param name="ExpansionId">The expansion token.</param>
/// <param name="Skiplist">Token ids whose vectors documents drop.</param>
/// <param name="QueryPromptText">sentence-transformers v6: the "query" prompt, prepended to the text (instead of a prefix id).</param>
/// <param name="DocumentPromptText">sentence-transformers v6: the "document" (or "passage" / "corpus") prompt.</param>
/// <param name="Pooling">How documents' token pooling is done and its defaults (null: PyLate's, no module default).</param>
internal sealed record PyLateSettings(int? QueryPrefixId, int? DocumentPrefixId, int QueryLength, int DocumentLength,
    bool DoQueryExpansion, bool AttendToExpansionTokens, int ExpansionId, IReadOnlySet<int> Skiplist,
    string? QueryPromptText = null, string? DocumentPromptText = null, TokenPoolingDefaults? Pooling = null);

/// <summary>
/// A folder's token pooling of documents: PyLate's (Ward over the rows of 1 − cos, protected vectors last) or
/// sentence-transformers v6's <c>pool_document_embeddings</c> (Ward over the condensed 1 − cos, protected vectors first),
/// and the pool factor its <c>HierarchicalPooling</c> module applies to every document (1: none).
/// </summary>
internal readonly record struct TokenPoolingDefaults(bool SentenceTransformers, int PoolFactor, int ProtectedTokens)
{
    /// <summary>PyLate's pooling, no module default.</summary>
    public static TokenPoolingDefaults PyLate => new(false, 1, 1);
}

/// <summary>Encodes prompts as PyLate queries and documents.</summary>
internal sealed class QueryDocumentEncoder(PoolingModel model)
{
    private PyLateSettings? _settings;

    /// <summary>The settings, resolved on first use (a folder that never asks for the modes never needs them).</summary>
    public PyLateSettings Settings => _settings ??= Resolve(model);

    /// <summary>
    /// The ids, attention flags and kept vectors of one prompt, as PyLate encodes a query or a document.
    /// <paramref name="content"/> is a text's tokens without special tokens (truncated, then the post-processor adds them,
    /// as HF truncation does), or with <paramref name="hasSpecials"/> a token-id prompt as given (truncated at the tail).
    /// </summary>
    public TokenizedPrompt Encode(int[] content, bool hasSpecials, InputType type)
    {
        return Encode(content, hasSpecials, type, Settings);
    }

    /// <summary>A text prompt as a query or document: a sentence-transformers v6 prompt is prepended to the text first.</summary>
    public TokenizedPrompt EncodeText(string text, InputType type)
    {
        var s = Settings;
        var prompt = type == InputType.Query ? s.QueryPromptText : s.DocumentPromptText;
        return Encode(model.Tokenizer!.Encode(prompt + text, addSpecialTokens: false), hasSpecials: false, type, s);
    }

    private TokenizedPrompt Encode(int[] content, bool hasSpecials, InputType type, PyLateSettings s)
    {
        var query = type == InputType.Query;
        var prefix = query ? s.QueryPrefixId : s.DocumentPrefixId;
        var length = query ? s.QueryLength : s.DocumentLength;
        var room = prefix is null ? length : length - 1;
        int[] ids;
        if (hasSpecials)
        {
            ids = content.Length > room ? content.AsSpan(0, room).ToArray() : content;
        }
        else
        {
            var tok = model.Tokenizer!;
            var keepContent = Math.Max(0, room - tok.NumSpecialTokensToAdd);
            ids = tok.ApplyPostProcessor(content.Length > keepContent ? content.AsSpan(0, keepContent) : content);
        }
        var attend = Enumerable.Repeat(true, ids.Length).ToList();
        var list = ids.ToList();
        if (query && s.DoQueryExpansion)
        {
            while (list.Count < room)
            {
                list.Add(s.ExpansionId);
                attend.Add(s.AttendToExpansionTokens);
            }
        }
        if (prefix is { } p && list.Count > 0)
        {
            list.Insert(1, p);
            attend.Insert(1, true);
        }
        bool[]? keep = null;
        if (!query) keep = list.Select(id => !s.Skiplist.Contains(id)).ToArray();
        return new TokenizedPrompt(list.ToArray(), [], attend.All(a => a) ? null : attend.ToArray(), keep);
    }

    private static PyLateSettings Resolve(PoolingModel model)
    {
        var tok = model.Tokenizer ?? throw new InvalidOperationException(
            "Query / document encoding needs the folder's tokenizer (for the prefix, expansion and skiplist tokens).");
        var pylate = model.Folder.PyLate;
        var config = TokenizerConfig.Load(model.Folder.Path);
        int? Named(string key) => config?.Token(key) is { } name ? tok.TokenToId(name) : null;
        var mask = Named("mask_token") ?? tok.TokenToId("[MASK]") ?? tok.TokenToId("<mask>");
        var eos = Named("eos_token") ?? (model.Folder.Config.Has("eos_token_id") ? model.Folder.Config.GetInt("eos_token_id", 0) : (int?)null);
        // PyLate maps each skiplist word with convert_tokens_to_ids: a word that is not one vocabulary token becomes the
        // unknown token's id (so documents then drop their [UNK] vectors); without an unknown token it is dropped.
        var unk = Named("unk_token") ?? tok.TokenToId("[UNK]") ?? tok.TokenToId("<unk>");
        HashSet<int> Skiplist(IEnumerable<string> words) => words.Select(w => tok.TokenToId(w) ?? unk).OfType<int>().ToHashSet();
        ModelLoadException NoExpansionToken() =>
            new($"'{model.Folder.Path}': query expansion needs a mask, EOS or pad token, and the tokenizer has none.", model.Folder.Path);

        // sentence-transformers v6 MultiVectorEncoder folders (unless they still carry PyLate's own prefix keys): the
        // Transformer module's lengths and expansion flags, prefixes as the "query" / "document" prompts (text), the
        // MultiVectorMask module's skiplist (none without that module), expansion with the mask token else the pad token,
        // and the HierarchicalPooling module's pooling.
        if (model.Folder.Layout?.MultiVector is { } v6 && pylate?.QueryPrefix is null && pylate?.DocumentPrefix is null)
        {
            var prompts = pylate?.Prompts ?? new Dictionary<string, string>();
            string? Prompt(params string[] names) => names.Select(n => prompts.GetValueOrDefault(n)).FirstOrDefault(p => p is not null);
            var v6Expansion = v6.DoQueryExpansion ?? true;
            return new PyLateSettings(null, null, v6.QueryLength ?? 32, v6.DocumentLength ?? 180, v6Expansion,
                v6Expansion && (v6.AttendToExpansionTokens ?? false),
                mask ?? tok.PadTokenId ?? eos ?? throw NoExpansionToken(),
                v6.HasMask ? Skiplist(v6.SkiplistWords ?? PunctuationWords) : [],
                Prompt("query"), Prompt("document", "passage", "corpus"),
                new TokenPoolingDefaults(true, v6.PoolFactor ?? 1, v6.ProtectedTokens ?? 1));
        }

        var artifact = ReadArtifact(model.Folder.Path);
        var queryPrefix = pylate?.QueryPrefix ?? artifact?.QueryToken ?? "[unused0]";
        var documentPrefix = pylate?.DocumentPrefix ?? artifact?.DocumentToken ?? "[unused1]";
        int? Id(string token, string what) => token.Length == 0 ? null
            : tok.TokenToId(token) ?? throw new ModelLoadException(
                $"'{model.Folder.Path}': the {what} '{token}' is not a token of the tokenizer (set it in {PyLateConfig.FileName}, or \"\" for none).", model.Folder.Path);
        var expansion = pylate?.DoQueryExpansion ?? true;
        // PyLate pads queries with the mask token (MLM models), else EOS (decoders).
        var expansionId = mask ?? eos ?? tok.PadTokenId ?? throw NoExpansionToken();
        return new PyLateSettings(Id(queryPrefix, "query prefix"), Id(documentPrefix, "document prefix"),
            pylate?.QueryLength ?? artifact?.QueryLength ?? 32, pylate?.DocumentLength ?? artifact?.DocumentLength ?? 180,
            expansion, expansion && (pylate?.AttendToExpansionTokens ?? artifact?.AttendToMask ?? false), expansionId,
            Skiplist(pylate?.SkiplistWords ?? PunctuationWords));
    }

    /// <summary>Python's <c>string.punctuation</c>, PyLate's default skiplist.</summary>
    private static readonly string[] PunctuationWords = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~".Select(c => c.ToString()).ToArray();

    private sealed record Artifact(string? QueryToken, string? DocumentToken, int? QueryLength, int? DocumentLength, bool? AttendToMask);

    /// <summary>colbert-ai's <c>artifact.metadata</c> (Stanford checkpoints), or null.</summary>
    private static Artifact? ReadArtifact(string folder)
    {
        var path = FolderPaths.Inside(folder, "artifact.metadata");
        if (!File.Exists(path)) return null;
        var c = HfConfig.Load(path);
        int? Len(string n) => c.Has(n) ? c.GetPositiveInt(n, 1) : null;
        return new Artifact(c.GetString("query_token_id", null), c.GetString("doc_token_id", null), Len("query_maxlen"), Len("doc_maxlen"),
            c.Has("attend_to_mask_tokens") ? c.GetBool("attend_to_mask_tokens", false) : null);
    }
}
