using Microsoft.Extensions.AI;

namespace TokenEmbed.Extensions.AI;

/// <summary>
/// A Microsoft.Extensions.AI generator of multi-vector embeddings over a shared <see cref="Llm"/>: one vector per kept token
/// (<see cref="PoolingTask.TokenEmbed"/>), for late-interaction retrieval. <see cref="EmbeddingGenerationOptions.Dimensions"/>
/// cuts each token vector (Matryoshka); <c>AdditionalProperties["input_type"] = "query" | "document"</c> selects PyLate's
/// query or document encoding (<see cref="InputType"/>).
/// </summary>
/// <remarks>The generator does not own the <see cref="Llm"/>: disposing it leaves the model loaded.</remarks>
public sealed class LlmMultiVectorGenerator : IEmbeddingGenerator<string, MultiVectorEmbedding>
{
    private readonly GeneratorCore _core;

    /// <summary>Wraps <paramref name="llm"/>.</summary>
    /// <param name="llm">The model; shared, not disposed by the generator.</param>
    public LlmMultiVectorGenerator(Llm llm) => _core = new GeneratorCore(llm, PoolingTask.TokenEmbed);

    /// <inheritdoc />
    public Task<GeneratedEmbeddings<MultiVectorEmbedding>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null,
        CancellationToken cancellationToken = default) =>
        _core.GenerateAsync(values, options, o => new MultiVectorEmbedding(o.Outputs.Data, o.Outputs.Shape[0], o.Outputs.Shape[1]), cancellationToken);

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null) => _core.GetService(this, serviceType, serviceKey);

    /// <summary>Does nothing: the <see cref="Llm"/> is shared and disposed by its owner.</summary>
    public void Dispose()
    {
    }
}

/// <summary>What both generators share: the model, its metadata, the encode call and <c>GetService</c>.</summary>
internal sealed class GeneratorCore(Llm llm, PoolingTask task)
{
    public Llm Llm { get; } = llm ?? throw new ArgumentNullException(nameof(llm));

    public EmbeddingGeneratorMetadata Metadata { get; } = GeneratorMetadata.For(llm, task);

    /// <summary>Encodes <paramref name="values"/> with the generator's task and turns each output into an embedding.</summary>
    public async Task<GeneratedEmbeddings<TEmbedding>> GenerateAsync<TEmbedding>(IEnumerable<string> values, EmbeddingGenerationOptions? options,
        Func<PoolingRequestOutput, TEmbedding> make, CancellationToken cancellationToken) where TEmbedding : Embedding
    {
        ArgumentNullException.ThrowIfNull(values);
        var outputs = await Llm.EncodeAsync(values.ToArray(), task, GeneratorMetadata.Params(options), cancellationToken).ConfigureAwait(false);
        var created = DateTimeOffset.UtcNow;
        var result = new GeneratedEmbeddings<TEmbedding>(outputs.Select(o =>
        {
            var e = make(o);
            e.ModelId = Metadata.DefaultModelId;
            e.CreatedAt = created;
            return e;
        }));
        result.Usage = GeneratorMetadata.Usage(outputs);
        return result;
    }

    /// <summary><c>GetService</c>: the metadata, the <see cref="TokenEmbed.Llm"/>, or the generator itself.</summary>
    public object? GetService(object generator, Type serviceType, object? serviceKey)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return Metadata;
        if (serviceType == typeof(Llm)) return Llm;
        return serviceType.IsInstanceOfType(generator) ? generator : null;
    }
}

/// <summary>What both generators share: metadata, the options mapping and usage.</summary>
internal static class GeneratorMetadata
{
    public const string ProviderName = "tokenembed";

    public static EmbeddingGeneratorMetadata For(Llm llm, PoolingTask task) =>
        new(ProviderName, null, Path.GetFileName(Path.TrimEndingDirectorySeparator(llm.Model)), llm.Dimension);

    /// <summary>M.E.AI options → pooling parameters: <c>Dimensions</c>, and <c>input_type</c> from the additional properties.</summary>
    public static PoolingParams? Params(EmbeddingGenerationOptions? options)
    {
        if (options is null) return null;
        InputType? inputType = null;
        if (options.AdditionalProperties?.TryGetValue("input_type", out var raw) == true && raw is not null)
        {
            inputType = raw switch
            {
                InputType t => t,
                string s when s.Equals("query", StringComparison.OrdinalIgnoreCase) => InputType.Query,
                string s when s.Equals("document", StringComparison.OrdinalIgnoreCase) => InputType.Document,
                string s when s.Equals("plain", StringComparison.OrdinalIgnoreCase) => InputType.Plain,
                _ => throw new ArgumentException($"AdditionalProperties[\"input_type\"] is '{raw}': use \"query\", \"document\" or \"plain\".", nameof(options)),
            };
        }
        return new PoolingParams { Dimensions = options.Dimensions, InputType = inputType };
    }

    public static UsageDetails Usage(IReadOnlyList<PoolingRequestOutput> outputs)
    {
        long tokens = outputs.Sum(o => (long)o.PromptTokenIds.Count);
        return new UsageDetails { InputTokenCount = tokens, TotalTokenCount = tokens };
    }
}
