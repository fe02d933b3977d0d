using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace TokenEmbed.Extensions.AI;

/// <summary>Dependency-injection registration of a TokenEmbed model and its Microsoft.Extensions.AI generators.</summary>
public static class TokenEmbedServiceCollectionExtensions
{
    /// <summary>
    /// Registers one <see cref="Llm"/> for <paramref name="model"/> as a singleton (loaded on first use, disposed with the
    /// container), <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> of <see cref="Embedding{T}"/> (Embed) through
    /// <c>AddEmbeddingGenerator</c>, and <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> of <see cref="MultiVectorEmbedding"/>
    /// (TokenEmbed). The returned builder adds middleware to the single-vector pipeline (<c>.UseDistributedCache()</c>,
    /// <c>.UseOpenTelemetry()</c>, <c>.UseLogging()</c>).
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="model">A local model folder.</param>
    /// <param name="configure">Sets <see cref="LlmOptions"/> (device, dtype, batching); the container's logger factory is used unless it sets one.</param>
    public static EmbeddingGeneratorBuilder<string, Embedding<float>> AddTokenEmbed(this IServiceCollection services, string model, Action<LlmOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        services.TryAddSingleton(sp =>
        {
            var options = new LlmOptions();
            configure?.Invoke(options);
            options.LoggerFactory ??= sp.GetService<ILoggerFactory>();
            return new Llm(model, options);
        });
        services.TryAddSingleton<IEmbeddingGenerator<string, MultiVectorEmbedding>>(sp => new LlmMultiVectorGenerator(sp.GetRequiredService<Llm>()));
        return services.AddEmbeddingGenerator(sp => new LlmEmbeddingGenerator(sp.GetRequiredService<Llm>()));
    }
}
