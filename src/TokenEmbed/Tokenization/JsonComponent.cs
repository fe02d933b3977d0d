using System.Text.Json;
using TokenEmbed.Loading;

namespace TokenEmbed.Tokenization;

/// <summary>
/// One object of a tokenizer file (a normalizer, pre-tokenizer, model, post-processor, …) with typed,
/// tolerant accessors: an absent or <c>null</c> field gives the default, a field of the wrong JSON kind
/// throws a <see cref="ModelLoadException"/> that names the file and the field's path.
/// </summary>
internal sealed class JsonComponent
{
    public JsonComponent(JsonElement element, string filePath, string path, string? type = null)
    {
        Element = element;
        FilePath = filePath;
        Path = path;
        Type = type ?? (element.ValueKind == JsonValueKind.Object && element.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String
            ? t.GetString()
            : null);
    }

    /// <summary>The JSON object.</summary>
    public JsonElement Element { get; }

    /// <summary>The file it was read from.</summary>
    public string FilePath { get; }

    /// <summary>Where it is in the file, e.g. <c>normalizer.normalizers[1]</c>.</summary>
    public string Path { get; }

    /// <summary>The value of its <c>"type"</c> field (or the inferred type), or null.</summary>
    public string? Type { get; }

    /// <summary>Wraps a nested object (null when absent or JSON null).</summary>
    public JsonComponent? GetComponent(string name)
    {
        var e = Get(name, JsonValueKind.Object);
        return e is null ? null : new JsonComponent(e.Value, FilePath, $"{Path}.{name}");
    }

    /// <summary>The objects of an array field (empty when absent).</summary>
    public IReadOnlyList<JsonComponent> GetComponents(string name)
    {
        var e = Get(name, JsonValueKind.Array);
        if (e is null) return [];
        var list = new List<JsonComponent>();
        int i = 0;
        foreach (var item in e.Value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Object) throw Invalid($"{Path}.{name}[{i}] must be an object");
            list.Add(new JsonComponent(item, FilePath, $"{Path}.{name}[{i}]"));
            i++;
        }
        return list;
    }

    public bool GetBool(string name, bool defaultValue) => GetNullableBool(name) ?? defaultValue;

    public bool? GetNullableBool(string name)
    {
        if (!Element.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        return e.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Invalid($"{Path}.{name} must be true or false"),
        };
    }

    public string? GetString(string name)
    {
        var e = Get(name, JsonValueKind.String);
        return e?.GetString();
    }

    public string GetRequiredString(string name) => GetString(name) ?? throw Invalid($"{Path}.{name} is missing");

    public int? GetInt(string name)
    {
        var e = Get(name, JsonValueKind.Number);
        if (e is null) return null;
        if (!e.Value.TryGetInt32(out int v)) throw Invalid($"{Path}.{name} must be a 32-bit integer");
        return v;
    }

    /// <summary>The raw value of a field of the given kind, or null when absent or JSON null.</summary>
    public JsonElement? Get(string name, JsonValueKind kind)
    {
        if (!Element.TryGetProperty(name, out var e) || e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != kind) throw Invalid($"{Path}.{name} must be a JSON {kind.ToString().ToLowerInvariant()}");
        return e;
    }

    /// <summary>An error about this component's content.</summary>
    public ModelLoadException Invalid(string message) => JsonFile.Error(FilePath, message);

    /// <summary>The error for a component type the library does not implement.</summary>
    public ModelLoadException Unsupported(string kind) =>
        Type is null
            ? Invalid($"{Path}: the {kind} has no \"type\"")
            : JsonFile.Error(FilePath, $"unsupported {kind} type \"{Type}\" at {Path}");
}
