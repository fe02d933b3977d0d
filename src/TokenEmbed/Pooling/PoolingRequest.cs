namespace TokenEmbed.Pooling;

/// <summary>
/// One request's pooling, resolved from its <see cref="PoolingParams"/>: what to produce and how to finish each vector.
/// Requests with different values can share a forward batch; <see cref="Pooler"/> applies each request's own.
/// </summary>
/// <param name="Task">Embed (one vector per prompt) or TokenEmbed (one per token).</param>
/// <param name="Dimensions">The Matryoshka cut, or null for the full width.</param>
/// <param name="Normalize">Whether vectors are L2-normalized (eps 1e-12).</param>
internal readonly record struct PoolingRequest(PoolingTask Task, int? Dimensions, bool Normalize)
{
    /// <summary>Checks <paramref name="p"/> against what <paramref name="pooler"/> produces for <paramref name="task"/>.</summary>
    public static PoolingRequest Resolve(PoolingTask task, PoolingParams? p, Pooler pooler)
    {
        if (task is not (PoolingTask.Embed or PoolingTask.TokenEmbed))
            throw new ArgumentOutOfRangeException(nameof(task), task, "Only Embed and TokenEmbed are supported.");
        var dim = pooler.Dimension(task);
        if (p?.Dimensions is { } d && (d <= 0 || d > dim))
            throw new ArgumentOutOfRangeException(nameof(p), d, $"PoolingParams.Dimensions must be between 1 and the model's output size {dim}.");
        return new PoolingRequest(task, p?.Dimensions, p?.Normalize ?? true);
    }
}
