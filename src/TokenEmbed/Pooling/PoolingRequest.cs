namespace TokenEmbed.Pooling;

/// <summary>
/// One request's pooling, resolved from its <see cref="PoolingParams"/>: what to produce and how to finish each vector.
/// Requests with different values can share a forward batch; <see cref="Pooler"/> applies each request's own.
/// </summary>
/// <param name="Task">Embed (one vector per prompt) or TokenEmbed (one per token).</param>
/// <param name="Dimensions">The Matryoshka cut, or null for the full width.</param>
/// <param name="Normalize">Whether vectors are L2-normalized (eps 1e-12).</param>
/// <param name="PoolFactor">Token pooling of a document's vectors (1 = none).</param>
/// <param name="ProtectedTokens">Leading vectors kept out of token pooling.</param>
/// <param name="SentenceTransformersPooling">Pool as sentence-transformers v6 does (else as PyLate does).</param>
internal readonly record struct PoolingRequest(PoolingTask Task, int? Dimensions, bool Normalize, int PoolFactor = 1, int ProtectedTokens = 1,
    bool SentenceTransformersPooling = false)
{
    /// <summary>
    /// Checks <paramref name="p"/> against what <paramref name="pooler"/> produces for <paramref name="task"/>;
    /// <paramref name="documents"/> is the folder's token pooling, for Document requests.
    /// </summary>
    public static PoolingRequest Resolve(PoolingTask task, PoolingParams? p, Pooler pooler, Engine.TokenPoolingDefaults? documents = null)
    {
        if (task is not (PoolingTask.Embed or PoolingTask.TokenEmbed))
            throw new ArgumentOutOfRangeException(nameof(task), task, "Only Embed and TokenEmbed are supported.");
        var dim = pooler.Dimension(task);
        if (p?.Dimensions is { } d && (d <= 0 || d > dim))
            throw new ArgumentOutOfRangeException(nameof(p), d, $"PoolingParams.Dimensions must be between 1 and the model's output size {dim}.");
        // A sentence-transformers HierarchicalPooling module pools every document unless the request says otherwise.
        var byModule = task == PoolingTask.TokenEmbed && p?.InputType == InputType.Document ? documents : null;
        var factor = p?.PoolFactor ?? byModule?.PoolFactor ?? 1;
        var kept = p?.ProtectedTokens ?? byModule?.ProtectedTokens ?? 1;
        if (factor < 1)
            throw new ArgumentOutOfRangeException(nameof(p), factor, "PoolingParams.PoolFactor must be at least 1 (1 = no token pooling).");
        if (kept < 0)
            throw new ArgumentOutOfRangeException(nameof(p), kept, "PoolingParams.ProtectedTokens must not be negative.");
        if (factor > 1 && (task != PoolingTask.TokenEmbed || p?.InputType != InputType.Document))
            throw new ArgumentException(
                $"PoolingParams.PoolFactor {factor} pools the token vectors of documents: it needs PoolingTask.TokenEmbed with InputType Document " +
                $"(got {task} with InputType {p?.InputType?.ToString() ?? "null"}); for Score, InputType Query pools the documents' side.", nameof(p));
        return new PoolingRequest(task, p?.Dimensions, p?.Normalize ?? true, factor, kept, byModule?.SentenceTransformers ?? false);
    }
}
