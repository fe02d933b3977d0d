using Microsoft.Extensions.AI;

namespace TokenEmbed.Extensions.AI;

/// <summary>
/// A Microsoft.Extensions.AI embedding generator over a shared <see cref="Llm"/>: one vector per input
/// (<see cref="PoolingTask.Embed"/>). <see cref="EmbeddingGenerationOptions.Dimensions"/> is the Matryoshka cut.
/// </summary>
/// <remarks>The generator does not own the <see cref="Llm"/>: disposing it leaves the model loaded.</remarks>
public sealed class LlmEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly Llm _llm;
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>Wraps <paramref name="llm"/>.</summary>
    /// <param name="llm">The model; shared, not disposed by the generator.</param>
    public LlmEmbeddingGenerator(Llm llm)
    {
        ArgumentNullException.ThrowIfNull(llm);
        _llm = llm;
        _metadata = GeneratorMetadata.For(llm, PoolingTask.Embed);
    }

    /// <inheritdoc />
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToArray();
        var outputs = await _llm.EncodeAsync(texts, PoolingTask.Embed, GeneratorMetadata.Params(options), cancellationToken).ConfigureAwait(false);
        var created = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<Embedding<float>>(outputs.Select(o =>
            new Embedding<float>(o.Outputs.Data) { ModelId = _metadata.DefaultModelId, CreatedAt = created }));
        result.Usage = GeneratorMetadata.Usage(outputs);
        return result;
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType == typeof(Llm)) return _llm;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Does nothing: the <see cref="Llm"/> is shared and disposed by its owner.</summary>
    public void Dispose()
    {
    }
}
