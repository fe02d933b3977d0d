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
    private readonly string _fieldPrefix;

    private HfConfig(JsonObject root, string filePath, string fieldPrefix = "")
    {
        _root = root;
        FilePath = filePath;
        _fieldPrefix = fieldPrefix;
    }

    /// <summary>The file it was read from.</summary>
    public string FilePath { get; }

    /// <summary>Reads and parses <paramref name="path"/>.</summary>
    public static HfConfig Load(string path)
    {
        if (!File.Exists(path)) throw JsonFile.Error(path, "the file is missing: a model folder needs a config.json.");
        return new HfConfig(ReadJsonObject(path), path);
    }

    /// <summary>Parses a JSON object file or throws <see cref="ModelLoadException"/> naming it.</summary>
    public static JsonObject ReadJsonObject(string path) => JsonFile.ReadObject(path);

    /// <summary>
    /// Element <paramref name="index"/> of an array read from <paramref name="filePath"/> as a config object; errors name
    /// the field as <c>{arrayName}[index].field</c>.
    /// </summary>
    public static HfConfig Element(JsonNode? node, string filePath, string arrayName, int index) =>
        node is JsonObject o
            ? new HfConfig(o, filePath, $"{arrayName}[{index}].")
            : throw JsonFile.Error(filePath, $"{arrayName}[{index}] must be an object, found {node?.ToJsonString() ?? "null"}.");

    /// <summary>config.json's <c>architectures</c> (may be empty).</summary>
    public IReadOnlyList<string> Architectures => GetStringList("architectures")?.Where(s => s.Length > 0).ToArray() ?? [];

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
            throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be an integer, found {n.ToJsonString()}.", FilePath, innerException: e);
        }
    }

    /// <summary>A number field, or <paramref name="fallback"/> when absent or null.</summary>
    public double GetDouble(string name, double fallback)
    {
        var n = _root[name];
        if (n is null) return fallback;
        try { return n.GetValue<double>(); }
        catch (Exception e) when (e is FormatException or InvalidOperationException)
        {
            throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be a number, found {n.ToJsonString()}.", FilePath, innerException: e);
        }
    }

    /// <summary>A normalization epsilon (<c>layer_norm_eps</c>, <c>rms_norm_eps</c>, …): a number ≥ 0, else an error naming the field.</summary>
    public double GetEps(string name, double fallback)
    {
        var v = GetDouble(name, fallback);
        if (!(v >= 0) || double.IsInfinity(v))
            throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be a non-negative number, found {v}.", FilePath);
        return v;
    }

    /// <summary>A string field, or <paramref name="fallback"/> when absent or null.</summary>
    public string? GetString(string name, string? fallback)
    {
        var n = _root[name];
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue<string>(out var s)) return s;
        throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be a string, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>The largest size a config field may give (2^24): far above any real model, far below a multi-GB allocation.</summary>
    public const int MaxSize = 1 << 24;

    /// <summary>
    /// A positive integer field (a size or a count) with a default; zero, negative or implausibly large values
    /// (above <paramref name="max"/>) are errors naming the field.
    /// </summary>
    public int GetPositiveInt(string name, int fallback, int max = MaxSize)
    {
        var v = GetInt(name, fallback);
        if (v <= 0) throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be positive, found {v}.", FilePath);
        if (v > max) throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' is {v}, more than the limit of {max}.", FilePath);
        return v;
    }

    /// <summary>A boolean field, or <paramref name="fallback"/> when absent or null.</summary>
    public bool GetBool(string name, bool fallback)
    {
        var n = _root[name];
        if (n is null) return fallback;
        if (n is JsonValue v && v.TryGetValue<bool>(out var b)) return b;
        throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be true or false, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>A list-of-strings field, or null when absent or null.</summary>
    public IReadOnlyList<string>? GetStringList(string name)
    {
        var n = _root[name];
        if (n is null) return null;
        if (n is JsonArray a && a.All(e => e is JsonValue ev && ev.TryGetValue<string>(out _)))
            return a.Select(e => e!.GetValue<string>()).ToArray();
        throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be a list of strings, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>
    /// A per-layer list of names (e.g. <c>layer_types</c>) mapped through <paramref name="values"/>, or null when absent or
    /// null; a wrong length or an unknown name is an error naming the field.
    /// </summary>
    public T[]? GetPerLayerList<T>(string name, int numLayers, IReadOnlyDictionary<string, T> values)
    {
        if (GetStringList(name) is not { } names) return null;
        if (names.Count != numLayers)
            throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' has {names.Count} entries, num_hidden_layers is {numLayers}.", FilePath);
        return names.Select(n => values.TryGetValue(n, out var v) ? v : throw new ModelLoadException(
            $"'{FilePath}': field '{_fieldPrefix}{name}' has '{n}' (supported: {string.Join(", ", values.Keys.Select(k => $"'{k}'"))}).", FilePath)).ToArray();
    }

    /// <summary>Whether the field is present with an explicit JSON null (some fields mean "off" when null, their default when absent).</summary>
    public bool IsExplicitNull(string name) => _root.TryGetPropertyValue(name, out var n) && n is null;

    /// <summary>A list-of-integers field, or null when absent or null.</summary>
    public IReadOnlyList<int>? GetIntList(string name)
    {
        var n = _root[name];
        if (n is null) return null;
        if (n is JsonArray a && a.All(e => e is JsonValue ev && ev.TryGetValue<double>(out var d) && d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue))
            return a.Select(e => (int)e!.GetValue<double>()).ToArray();
        throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be a list of integers, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>A list-of-numbers field, or null when absent or null.</summary>
    public IReadOnlyList<double>? GetDoubleList(string name)
    {
        var n = _root[name];
        if (n is null) return null;
        if (n is JsonArray a && a.All(e => e is JsonValue ev && ev.TryGetValue<double>(out _)))
            return a.Select(e => e!.GetValue<double>()).ToArray();
        throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be a list of numbers, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>
    /// A nested object field as a config whose errors name the full field path (e.g. <c>rope_parameters.full_attention.rope_theta</c>),
    /// or null when absent or null.
    /// </summary>
    public HfConfig? GetSection(string name)
    {
        var n = _root[name];
        if (n is null) return null;
        if (n is JsonObject o) return new HfConfig(o, FilePath, _fieldPrefix + name + ".");
        throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be an object, found {n.ToJsonString()}.", FilePath);
    }

    /// <summary>The full path of a field of this object, for error messages (e.g. <c>rope_parameters.full_attention.rope_type</c>).</summary>
    public string FieldPath(string name) => _fieldPrefix + name;

    /// <summary>An object field whose values are all strings (e.g. sentence-transformers <c>prompts</c>), or null when absent or null.</summary>
    public IReadOnlyDictionary<string, string>? GetStringMap(string name)
    {
        var n = _root[name];
        if (n is null) return null;
        if (n is JsonObject o && o.All(kv => kv.Value is JsonValue v && v.TryGetValue<string>(out _)))
            return o.ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<string>(), StringComparer.Ordinal);
        throw new ModelLoadException($"'{FilePath}': field '{_fieldPrefix}{name}' must be an object of strings, found {n.ToJsonString()}.", FilePath);
    }
}
