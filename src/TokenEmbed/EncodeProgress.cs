namespace TokenEmbed;

/// <summary>Progress of a long <see cref="Llm.EncodeAsync(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?, IProgress{EncodeProgress}?, CancellationToken)"/>.</summary>
/// <param name="PromptsDone">Prompts encoded so far.</param>
/// <param name="PromptsTotal">Prompts in the call.</param>
/// <param name="TokensDone">Their tokens.</param>
/// <param name="TokensPerSecond">Tokens encoded per second since the call started.</param>
public sealed record EncodeProgress(int PromptsDone, int PromptsTotal, long TokensDone, double TokensPerSecond);
