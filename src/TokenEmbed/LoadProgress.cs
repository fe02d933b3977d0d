namespace TokenEmbed;

/// <summary>Progress of <see cref="Llm.LoadAsync"/>: which file is being downloaded and how far, then the load itself.</summary>
/// <param name="Stage"><c>"download"</c> while files are fetched from the hub, <c>"load"</c> while the weights are read.</param>
/// <param name="File">The repository file being downloaded (null in the load stage).</param>
/// <param name="BytesDone">Bytes of <paramref name="File"/> on disk so far.</param>
/// <param name="BytesTotal">Its size, when the hub said it.</param>
public sealed record LoadProgress(string Stage, string? File, long BytesDone, long? BytesTotal);
