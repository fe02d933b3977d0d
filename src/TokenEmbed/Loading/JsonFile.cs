using System.Text.Json;
using System.Text.Json.Nodes;

namespace TokenEmbed.Loading;

/// <summary>
/// The one way model-folder JSON files are read (config.json, modules.json, module configs, tokenizer files, the shard
/// index): the same parser options, a size limit, and one error style — a <see cref="ModelLoadException"/> whose message
/// starts with the quoted file path and names the field.
/// </summary>
internal static class JsonFile
{
    /// <summary>The largest JSON file read (tokenizer.json of large vocabularies is tens of MB).</summary>
    public const long MaxBytes = 512L << 20;

    private static readonly JsonDocumentOptions Options = new() { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 256 };

    /// <summary>An error about <paramref name="path"/>: <c>'path': message</c>.</summary>
    public static ModelLoadException Error(string path, string message, string? tensorName = null, Exception? inner = null) =>
        new($"'{path}': {message}", path, tensorName, inner);

    /// <summary>The file's bytes; a missing, unreadable or oversized file is an error naming it.</summary>
    public static byte[] ReadBytes(string path, long maxBytes = MaxBytes)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw Error(path, "the file is missing.");
            if (info.Length > maxBytes) throw Error(path, $"the file is {info.Length} bytes, more than the limit of {maxBytes}.");
            return File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Error(path, $"cannot be read: {e.Message}", inner: e);
        }
    }

    /// <summary>Parses the file as a document (the caller disposes it).</summary>
    public static JsonDocument ReadDocument(string path, long maxBytes = MaxBytes)
    {
        var bytes = ReadBytes(path, maxBytes);
        try
        {
            return JsonDocument.Parse(bytes, Options);
        }
        catch (JsonException e)
        {
            throw Error(path, $"not valid JSON: {e.Message}", inner: e);
        }
    }

    /// <summary>Parses the file as a mutable node tree (small config files).</summary>
    public static JsonNode? ReadNode(string path, long maxBytes = MaxBytes)
    {
        var bytes = ReadBytes(path, maxBytes);
        try
        {
            return JsonNode.Parse(bytes, documentOptions: Options);
        }
        catch (JsonException e)
        {
            throw Error(path, $"not valid JSON: {e.Message}", inner: e);
        }
    }

    /// <summary>Parses a file that must hold a JSON object.</summary>
    public static JsonObject ReadObject(string path) => ReadNode(path) as JsonObject ?? throw Error(path, "the file must hold a JSON object.");

    /// <summary>Parses a file that must hold a JSON array.</summary>
    public static JsonArray ReadArray(string path) => ReadNode(path) as JsonArray ?? throw Error(path, "the file must hold a JSON array.");
}
