using System.Text.Json;
using System.Text.Json.Nodes;

namespace TokenEmbed.Loading;

/// <summary>
/// A Hugging Face <c>config.json</c> with typed accessors. Each model family reads its fields with the defaults of
/// its transformers configuration class, since hub configs written by older versions omit fields.
/// </summary>
internal sealed class HfConfig
{
    private readonly JsonObject _root;

    private HfConfig(JsonObject root, string filePath)
    {
        _root = root;
        FilePath = filePath;
    }

    /// <summary>The file it was read from.</summary>
    public string FilePath { get; }

    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    public static HfConfig Load(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"'{path}' is missing: a model folder needs a config.json.", path);
        return new HfConfig(ReadJsonObject(path), path);
    }

    /// <summary>Parses a JSON object file or throws <see cref="ModelLoadException"/> naming it.</summary>
    public static JsonObject ReadJsonObject(string path)
    {
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path), documentOptions: new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
            return node as JsonObject ?? throw new ModelLoadException($"'{path}' must hold a JSON object.", path);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"'{path}' is not valid JSON: {e.Message}", path, innerException: e);
        }
    }

    /// <summary>config.json's <c>architectures</c> (may be empty).</summary>
    public IReadOnlyList<string> Architectures =>
        _root["architectures"] is JsonArray a ? a.Select(n => n?.GetValue<string>() ?? "").Where(s => s.Length > 0).ToArray() : [];

    /// <summary>config.json's <c>model_type</c>, or null.</summary>
    public string? ModelType => GetString("model_type", null);

    /// <summary>Whether the field is present and not null.</summary>
    public bool Has(string name) => _root[name] is not null;

    /// <summary>An integer field, or <paramref name="fallback"/> when absent or null.</summary>
    public int GetInt(string name, int fallback)
    {
        var n = _root[name];
        if (n is null) return fallback;
        try
        {
            var d = n.GetValue<double>();
            if (d != Math.Floor(d) || d < int.MinValue || d > int.MaxValue) throw new FormatException();
            return (int)d;
        }
        catch (Exception e) when (e is FormatException or InvalidOperationException)
        {
            throw new ModelLoadException($"'{FilePath}': field '{name}' must be an integer, found {n.ToJsonString()}.", FilePath, innerException: e);
        }
    }

    /// <summary>An integer field that must be present.</summary>
    public int? GetIntOrNull(string name) => _root[name] is null ? null : GetInt(name, 0);

    /// <summary>A number field, or <paramref name="fallback"/> when absent or null.</summary>
    public double GetDouble(string name, double fallback)
    {
        var n = _root[name];
        if (n is null) return fallback;
        try { return n.GetValue<double>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException)
        {
            throw new ModelLoadException($"'{FilePath}': field '{name}' must be a number, found {n.ToJsonString()}.", FilePath, innerException: e);
        }
    }

    /// <summary>A string field, or <paramref name="fallback"/> when absent or null.</summary>
    public string? GetString(string name, string? fallback)
    {
        var n = _root[name];
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        throw new ModelLoadException($"'{FilePath}': field '{name}' must be a string, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>A boolean field, or <paramref name="fallback"/> when absent or null.</summary>
    public bool GetBool(string name, bool fallback)
    {
        var n = _root[name];
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
        throw new ModelLoadException($"'{FilePath}': field '{name}' must be true or false, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>A positive integer field with a default; zero or negative values are errors naming the field.</summary>
    public int GetPositiveInt(string name, int fallback)
    {
        var v = GetInt(name, fallback);
        if (v <= 0) throw new ModelLoadException($"'{FilePath}': field '{name}' must be positive, found {v}.", FilePath);
        return v;
    }
}
