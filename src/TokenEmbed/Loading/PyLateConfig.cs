namespace TokenEmbed.Loading;

/// <summary>
/// The PyLate settings of a model folder's <c>config_sentence_transformers.json</c> (written by PyLate's
/// <c>ColBERT.save</c>; plain sentence-transformers folders carry only <c>prompts</c> and the like). Values are kept
/// as the file states them: null means the file does not say (PyLate's own defaults then apply).
/// </summary>
/// <remarks>
/// These settings describe PyLate-style query/document encoding (prefix markers, <c>[MASK]</c> query expansion,
/// punctuation skiplist). Loading them changes nothing in <c>Llm.Encode</c>, which keeps vLLM's behaviour
/// (no markers, no expansion); an explicit PyLate API is meant to use them.
/// </remarks>
internal sealed class PyLateConfig
{
    /// <summary>The file name in a model folder.</summary>
    public const string FileName = "config_sentence_transformers.json";

    /// <summary>The file it was read from.</summary>
    public required string FilePath { get; init; }

    /// <summary><c>query_prefix</c>, the marker put before query text (e.g. <c>"[Q] "</c>).</summary>
    public string? QueryPrefix { get; init; }

    /// <summary><c>document_prefix</c>, the marker put before document text (e.g. <c>"[D] "</c>).</summary>
    public string? DocumentPrefix { get; init; }

    /// <summary><c>query_length</c>: queries are padded (expanded) or truncated to this many tokens.</summary>
    public int? QueryLength { get; init; }

    /// <summary><c>document_length</c>: documents are truncated to this many tokens.</summary>
    public int? DocumentLength { get; init; }

    /// <summary><c>do_query_expansion</c>: pad queries with <c>[MASK]</c> tokens up to <see cref="QueryLength"/>.</summary>
    public bool? DoQueryExpansion { get; init; }

    /// <summary><c>attend_to_expansion_tokens</c>: whether the expansion tokens are attended to.</summary>
    public bool? AttendToExpansionTokens { get; init; }

    /// <summary><c>skiplist_words</c>: document tokens (usually punctuation) dropped from document embeddings.</summary>
    public IReadOnlyList<string>? SkiplistWords { get; init; }

    /// <summary><c>prompts</c>: named prompt texts (sentence-transformers), empty when absent.</summary>
    public IReadOnlyDictionary<string, string> Prompts { get; init; } = new Dictionary<string, string>();

    /// <summary><c>default_prompt_name</c>, or null.</summary>
    public string? DefaultPromptName { get; init; }

    /// <summary><c>similarity_fn_name</c> (PyLate writes <c>MaxSim</c>), or null.</summary>
    public string? SimilarityFnName { get; init; }

    /// <summary>
    /// Reads <c>config_sentence_transformers.json</c> from <paramref name="folder"/>, or returns null when the folder has none.
    /// A malformed file or field is a <see cref="ModelLoadException"/> naming the file and the field.
    /// </summary>
    public static PyLateConfig? Load(string folder)
    {
        var path = FolderPaths.Inside(folder, FileName);
        if (!File.Exists(path)) return null;
        var c = HfConfig.Load(path);
        int? Length(string name) => c.Has(name) ? c.GetPositiveInt(name, 1) : null;
        bool? Flag(string name) => c.Has(name) ? c.GetBool(name, false) : null;
        return new PyLateConfig
        {
            FilePath = path,
            QueryPrefix = c.GetString("query_prefix", null),
            DocumentPrefix = c.GetString("document_prefix", null),
            QueryLength = Length("query_length"),
            DocumentLength = Length("document_length"),
            DoQueryExpansion = Flag("do_query_expansion"),
            AttendToExpansionTokens = Flag("attend_to_expansion_tokens"),
            SkiplistWords = c.GetStringList("skiplist_words"),
            Prompts = c.GetStringMap("prompts") ?? new Dictionary<string, string>(),
            DefaultPromptName = c.GetString("default_prompt_name", null),
            SimilarityFnName = c.GetString("similarity_fn_name", null),
        };
    }
}
