using Microsoft.Extensions.AI;

namespace TokenEmbed.Extensions.AI;

/// <summary>
/// A Microsoft.Extensions.AI embedding generator over a shared <see cref="Llm"/>: one vector per input
/// (<see cref="PoolingTask.Embed"/>). <see cref="EmbeddingGenerationOptions.Dimensions"/> is the Matryoshka cut.
/// </summary>
/// <remarks>The generator does not own the <see cref="Llm"/>: disposing it leaves the model loaded.</remarks>
public sealed class LlmEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly GeneratorCore _core;

    /// <summary>Wraps <paramref name="llm"/>.</summary>
    /// <param name="llm">The model; shared, not disposed by the generator.</param>
    public LlmEmbeddingGenerator(Llm llm) => _core = new GeneratorCore(llm, PoolingTask.Embed);

    /// <inheritdoc />
    public Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default) =>
        _core.GenerateAsync(values, options, o => new Embedding<float>(o.Outputs.Data), cancellationToken);

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => _core.GetService(this, serviceType, serviceKey);

    /// <summary>Does nothing: the <see cref="Llm"/> is shared and disposed by its owner.</summary>
    public void Dispose()
    {
    }
}
