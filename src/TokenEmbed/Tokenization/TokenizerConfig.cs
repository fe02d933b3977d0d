using System.Text.Json;
using TokenEmbed.Loading;

namespace TokenEmbed.Tokenization;

/// <summary>
/// What the tokenizer needs from transformers' <c>tokenizer_config.json</c> (and <c>special_tokens_map.json</c>):
/// special token names, BERT basic-tokenizer options and <c>added_tokens_decoder</c>. Every field is optional.
/// </summary>
internal sealed class TokenizerConfig
{
    public const string FileName = "tokenizer_config.json";
    public const string SpecialTokensMapFileName = "special_tokens_map.json";

    private static readonly string[] SpecialTokenKeys =
        ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"];

    private TokenizerConfig()
    {
    }

    /// <summary>Special tokens by key (<c>unk_token</c>, <c>pad_token</c>, …) as declared; absent or null ones are missing.</summary>
    public Dictionary<string, AddedTokenSpec> SpecialTokens { get; } = new(StringComparer.Ordinal);

    /// <summary><c>additional_special_tokens</c>.</summary>
    public List<AddedTokenSpec> AdditionalSpecialTokens { get; } = [];

    /// <summary><c>added_tokens_decoder</c>, by id.</summary>
    public SortedDictionary<int, AddedTokenSpec> AddedTokensDecoder { get; } = [];

    public bool? DoLowerCase { get; private set; }

    public bool? StripAccents { get; private set; }

    public bool? TokenizeChineseChars { get; private set; }

    /// <summary>
    /// Reads <c>tokenizer_config.json</c> and <c>special_tokens_map.json</c> of a folder (the former wins);
    /// null when neither exists. A malformed file throws <see cref="ModelLoadException"/>.
    /// </summary>
    public static TokenizerConfig? Load(string folder)
    {
        string configPath = FolderPaths.Inside(folder, FileName);
        string mapPath = FolderPaths.Inside(folder, SpecialTokensMapFileName);
        bool hasConfig = File.Exists(configPath), hasMap = File.Exists(mapPath);
        if (!hasConfig && !hasMap) return null;

        var config = new TokenizerConfig();
        if (hasMap)
        {
            using var doc = Parse(mapPath);
            config.ReadSpecialTokens(new JsonComponent(doc.RootElement, mapPath, "$"));
        }
        if (hasConfig)
        {
            using var doc = Parse(configPath);
            var root = new JsonComponent(doc.RootElement, configPath, "$");
            config.ReadSpecialTokens(root);
            config.DoLowerCase = root.GetNullableBool("do_lower_case");
            config.StripAccents = root.GetNullableBool("strip_accents");
            config.TokenizeChineseChars = root.GetNullableBool("tokenize_chinese_chars");
            var decoder = root.Get("added_tokens_decoder", JsonValueKind.Object);
            if (decoder is not null)
            {
                foreach (var p in decoder.Value.EnumerateObject())
                {
                    var entry = new JsonComponent(p.Value, configPath, $"$.added_tokens_decoder.{p.Name}");
                    if (!int.TryParse(p.Name, out int id) || p.Value.ValueKind != JsonValueKind.Object)
                        throw entry.Invalid($"{entry.Path} must be an added token under an integer id");
                    config.AddedTokensDecoder[id] = TokenizerJson.ReadAddedToken(entry, id);
                }
            }
        }
        return config;
    }

    /// <summary>The content of a special token (<c>pad_token</c>, …), or null.</summary>
    public string? Token(string key) => SpecialTokens.TryGetValue(key, out var t) ? t.Content : null;

    private void ReadSpecialTokens(JsonComponent root)
    {
        if (root.Element.ValueKind != JsonValueKind.Object) throw root.Invalid("the file must contain a JSON object");
        foreach (string key in SpecialTokenKeys)
        {
            if (!root.Element.TryGetProperty(key, out var e)) continue;
            var token = ReadToken(e, root, key);
            if (token is null) SpecialTokens.Remove(key);
            else SpecialTokens[key] = token;
        }
        var additional = root.Get("additional_special_tokens", JsonValueKind.Array);
        if (additional is not null)
        {
            AdditionalSpecialTokens.Clear();
            foreach (var e in additional.Value.EnumerateArray())
            {
                var token = ReadToken(e, root, "additional_special_tokens");
                if (token is not null) AdditionalSpecialTokens.Add(token);
            }
        }
    }

    // A special token is a string, or an AddedToken object {"content": ..., "lstrip": ..., ...}.
    private static AddedTokenSpec? ReadToken(JsonElement e, JsonComponent root, string key) => e.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.String => new AddedTokenSpec(e.GetString()!, null, Special: true, Normalized: false),
        JsonValueKind.Object => TokenizerJson.ReadAddedToken(new JsonComponent(e, root.FilePath, $"$.{key}"), null, defaultSpecial: true),
        _ => throw root.Invalid($"$.{key} must be a string or a token object"),
    };

    private static JsonDocument Parse(string path) => JsonFile.ReadDocument(path);
}
