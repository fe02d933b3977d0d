using System.Text.Json;
using TokenEmbed.Loading;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Typed view of a Hugging Face <c>tokenizer.json</c>. Every section may be absent or <c>null</c> except
/// <c>model</c>. Component objects stay as <see cref="JsonComponent"/>s for the factories of each kind; the
/// document must stay alive (not disposed) while they are read.
/// </summary>
internal sealed class TokenizerJson : IDisposable
{
    private readonly JsonDocument _document;

    private TokenizerJson(JsonDocument document, string filePath)
    {
        _document = document;
        FilePath = filePath;
        var root = new JsonComponent(document.RootElement, filePath, "$");
        if (document.RootElement.ValueKind != JsonValueKind.Object) throw root.Invalid("the file must contain a JSON object");

        var added = new List<AddedTokenSpec>();
        var addedArray = root.Get("added_tokens", JsonValueKind.Array);
        if (addedArray is not null)
        {
            int i = 0;
            foreach (var item in addedArray.Value.EnumerateArray())
            {
                var c = new JsonComponent(item, filePath, $"added_tokens[{i++}]");
                if (item.ValueKind != JsonValueKind.Object) throw c.Invalid($"{c.Path} must be an object");
                added.Add(ReadAddedToken(c, c.GetInt("id")));
            }
        }
        AddedTokens = added;

        Normalizer = root.GetComponent("normalizer");
        PreTokenizer = root.GetComponent("pre_tokenizer");
        PostProcessor = root.GetComponent("post_processor");
        var model = root.GetComponent("model") ?? throw root.Invalid("the \"model\" section is missing");
        Model = model.Type is null ? new JsonComponent(model.Element, filePath, model.Path, InferModelType(model)) : model;

        var padding = root.GetComponent("padding");
        if (padding is not null)
        {
            PaddingId = padding.GetInt("pad_id");
            PaddingToken = padding.GetString("pad_token");
        }
    }

    /// <summary>The file path.</summary>
    public string FilePath { get; }

    /// <summary><c>added_tokens</c>, in file order.</summary>
    public IReadOnlyList<AddedTokenSpec> AddedTokens { get; }

    public JsonComponent? Normalizer { get; }

    public JsonComponent? PreTokenizer { get; }

    /// <summary>The model; its <see cref="JsonComponent.Type"/> is inferred (as Hugging Face's untagged fallback does) when the file omits it.</summary>
    public JsonComponent Model { get; }

    public JsonComponent? PostProcessor { get; }

    /// <summary><c>padding.pad_id</c>, when the file has padding settings.</summary>
    public int? PaddingId { get; }

    /// <summary><c>padding.pad_token</c>, when the file has padding settings.</summary>
    public string? PaddingToken { get; }

    /// <summary>Reads and parses the file; a missing, unreadable or malformed file throws <see cref="ModelLoadException"/>.</summary>
    public static TokenizerJson Load(string filePath)
    {
        var document = JsonFile.ReadDocument(filePath);
        try
        {
            return new TokenizerJson(document, filePath);
        }
        catch
        {
            document.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Reads an added-token object (<c>content</c>, <c>special</c>, <c>normalized</c>, <c>lstrip</c>, <c>rstrip</c>,
    /// <c>single_word</c>); <c>normalized</c> defaults to <c>!special</c> as in Hugging Face's <c>AddedToken::from</c>.
    /// </summary>
    public static AddedTokenSpec ReadAddedToken(JsonComponent c, int? id, bool defaultSpecial = false)
    {
        string content = c.GetRequiredString("content");
        bool special = c.GetBool("special", defaultSpecial);
        return new AddedTokenSpec(
            content,
            id,
            special,
            c.GetBool("normalized", !special),
            c.GetBool("lstrip", false),
            c.GetBool("rstrip", false),
            c.GetBool("single_word", false));
    }

    public void Dispose() => _document.Dispose();

    private static string? InferModelType(JsonComponent model)
    {
        var e = model.Element;
        if (e.TryGetProperty("vocab", out var vocab) && vocab.ValueKind == JsonValueKind.Array) return "Unigram";
        if (e.TryGetProperty("merges", out _)) return "BPE";
        if (e.TryGetProperty("continuing_subword_prefix", out _) || e.TryGetProperty("max_input_chars_per_word", out _)) return "WordPiece";
        if (e.TryGetProperty("vocab", out _) && e.TryGetProperty("unk_token", out _)) return "WordLevel";
        return null;
    }
}
