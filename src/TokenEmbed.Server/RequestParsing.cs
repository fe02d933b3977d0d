using System.Text.Json;

namespace TokenEmbed.Server;

/// <summary>Reads vLLM's request fields from a JSON body, strictly: a field of the wrong kind is a 400 naming it.</summary>
internal static class RequestParsing
{
    /// <summary><c>input</c> / <c>prompt</c>: a string, a list of strings, a list of token ids, or a list of token-id lists.</summary>
    public static Prompt[] Inputs(JsonElement body, string field, int max)
    {
        if (!body.TryGetProperty(field, out var e) || e.ValueKind == JsonValueKind.Null) throw ApiError.Bad($"'{field}' is required.", field);
        Prompt[] prompts = e.ValueKind switch
        {
            JsonValueKind.String => [Prompt.FromText(e.GetString()!)],
            JsonValueKind.Array when e.GetArrayLength() == 0 => throw ApiError.Bad($"'{field}' is an empty list.", field),
            JsonValueKind.Array when e[0].ValueKind == JsonValueKind.Number => [Prompt.FromTokenIds(Ids(e, field))],
            JsonValueKind.Array => e.EnumerateArray().Select((x, i) => x.ValueKind switch
            {
                JsonValueKind.String => Prompt.FromText(x.GetString()!),
                JsonValueKind.Array => Prompt.FromTokenIds(Ids(x, $"{field}[{i}]")),
                _ => throw ApiError.Bad($"'{field}[{i}]' must be a string or a list of token ids.", field),
            }).ToArray(),
            _ => throw ApiError.Bad($"'{field}' must be a string, a list of strings, a list of token ids or a list of token-id lists.", field),
        };
        if (prompts.Length > max)
            throw new ApiError(System.Net.HttpStatusCode.RequestEntityTooLarge, $"'{field}' has {prompts.Length} inputs; the limit is {max}.", field);
        return prompts;
    }

    private static int[] Ids(JsonElement e, string field) => e.EnumerateArray().Select((x, i) =>
        x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out var id) ? id : throw ApiError.Bad($"'{field}[{i}]' must be an integer token id.", field)).ToArray();

    /// <summary>One of several spellings of a string-or-list field (<c>queries</c> / <c>text_1</c> / <c>data_1</c>).</summary>
    public static Prompt[] Texts(JsonElement body, int max, params string[] names)
    {
        foreach (var n in names)
            if (body.TryGetProperty(n, out var e) && e.ValueKind != JsonValueKind.Null) return Inputs(body, n, max);
        throw ApiError.Bad($"'{names[0]}' (or {string.Join(" / ", names.Skip(1).Select(x => $"'{x}'"))}) is required.", names[0]);
    }

    public static string? String(JsonElement body, string name) => Get(body, name, JsonValueKind.String)?.GetString();

    public static int? Int(JsonElement body, string name)
    {
        var e = Get(body, name, JsonValueKind.Number);
        if (e is null) return null;
        return e.Value.TryGetInt32(out var v) ? v : throw ApiError.Bad($"'{name}' must be an integer.", name);
    }

    public static bool? Bool(JsonElement body, string name)
    {
        if (!body.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw ApiError.Bad($"'{name}' must be true or false.", name),
        };
    }

    private static JsonElement? Get(JsonElement body, string name, JsonValueKind kind)
    {
        if (!body.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != kind) throw ApiError.Bad($"'{name}' must be a JSON {kind.ToString().ToLowerInvariant()}.", name);
        return e;
    }

    /// <summary>The pooling parameters vLLM's requests carry (dimensions, normalize or use_activation, truncate_prompt_tokens), plus input_type / embedding_mode and PyLate's pool_factor / protected_tokens.</summary>
    public static PoolingParams Params(JsonElement body)
    {
        // vLLM PR #44530 calls it embedding_mode; both spellings are accepted.
        var type = (String(body, "input_type") ?? String(body, "embedding_mode")) switch
        {
            null or "plain" => (InputType?)null,
            "query" => InputType.Query,
            "document" => InputType.Document,
            var other => throw ApiError.Bad($"input_type '{other}' is not supported (query, document, plain).", "input_type"),
        };
        return new PoolingParams
        {
            InputType = type,
            Dimensions = Int(body, "dimensions"),
            Normalize = Bool(body, "normalize") ?? Bool(body, "use_activation"),
            TruncatePromptTokens = Int(body, "truncate_prompt_tokens"),
            // PyLate's token pooling of documents (with input_type "document", or "query" on /score and /rerank).
            PoolFactor = Int(body, "pool_factor"),
            ProtectedTokens = Int(body, "protected_tokens"),
        };
    }

    /// <summary><c>encoding_format</c>: <c>float</c> (default) or <c>base64</c>.</summary>
    public static bool Base64(JsonElement body) => String(body, "encoding_format") switch
    {
        null or "float" => false,
        "base64" => true,
        var other => throw ApiError.Bad($"encoding_format '{other}' is not supported (float, base64).", "encoding_format"),
    };
}
