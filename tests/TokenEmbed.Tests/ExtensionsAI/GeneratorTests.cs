using System.Text.Json;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using NUnit.Framework;
using TokenEmbed.Extensions.AI;
using TokenEmbed.Loading;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.ExtensionsAI;

/// <summary>
/// TokenEmbed.Extensions.AI: the single-vector generator against ONNX Runtime's MiniLM sentence embeddings, the multi-vector
/// generator against ONNX Runtime's hidden states (normalized per token), and the DI pipeline (cache, cancellation).
/// </summary>
[NonParallelizable]
public sealed class GeneratorTests
{
    private Llm _llm = null!;
    private string[] _texts = null!;
    private SafeTensorsFile _ref = null!;

    [OneTimeSetUp]
    public void Load()
    {
        _llm = new Llm(TestPaths.MiniLm, new LlmOptions { Device = "cpu" });
        _ref = SafeTensorsFile.Open(Path.Combine(TestPaths.MiniLm, "reference.safetensors"));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.MiniLm, "texts.json")));
        var texts = doc.RootElement.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToArray();
        _texts = doc.RootElement.GetProperty("batches")[0].GetProperty("text_indices").EnumerateArray().Select(e => texts[e.GetInt32()]).ToArray();
    }

    [OneTimeTearDown]
    public void Free()
    {
        _llm?.Dispose();
        _ref?.Dispose();
    }

    [Test]
    public async Task EmbeddingsMatchOnnxRuntimeAndUsageCountsTokens()
    {
        using IEmbeddingGenerator<string, Embedding<float>> generator = new LlmEmbeddingGenerator(_llm);
        var result = await generator.GenerateAsync(_texts);
        var (emb, shape) = Reference.ReadFloat32(_ref, "main.sentence_embedding");
        var (mask, _) = Reference.ReadInt64(_ref, "main.attention_mask");
        var h = (int)shape[1];
        Assert.That(result, Has.Count.EqualTo(_texts.Length));
        var max = 0f;
        for (var i = 0; i < _texts.Length; i++)
        {
            Assert.That(result[i].Vector.Length, Is.EqualTo(h));
            max = Math.Max(max, Reference.MaxAbsDiff(result[i].Vector.ToArray(), emb.AsSpan(i * h, h)));
        }
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
        Assert.That(result.Usage?.InputTokenCount, Is.EqualTo(mask.Sum()), "tokens as ONNX Runtime's reference batch has them");
        var metadata = generator.GetService<EmbeddingGeneratorMetadata>()!;
        Assert.That((metadata.ProviderName, metadata.DefaultModelId, metadata.DefaultModelDimensions), Is.EqualTo(("tokenembed", "all-MiniLM-L6-v2", (int?)384)));
        Assert.That(result[0].ModelId, Is.EqualTo("all-MiniLM-L6-v2"));
    }

    [Test]
    public async Task DimensionsCutTheVector()
    {
        using var generator = new LlmEmbeddingGenerator(_llm);
        var full = (await generator.GenerateAsync([_texts[0]]))[0].Vector.ToArray();
        var cut = (await generator.GenerateAsync([_texts[0]], new EmbeddingGenerationOptions { Dimensions = 64 }))[0].Vector.ToArray();
        Assert.That(cut, Has.Length.EqualTo(64));
        Assert.That(cut, Is.Not.EqualTo(full.Take(64).ToArray()), "renormalized after the cut, as vLLM does");
    }

    [Test]
    public async Task MultiVectorEmbeddingsAreTheNormalizedHiddenStatesOfOnnxRuntime()
    {
        using IEmbeddingGenerator<string, MultiVectorEmbedding> generator = new LlmMultiVectorGenerator(_llm);
        var result = await generator.GenerateAsync(_texts);
        var (hidden, hShape) = Reference.ReadFloat32(_ref, "main.last_hidden_state");
        var (mask, mShape) = Reference.ReadInt64(_ref, "main.attention_mask");
        int t = (int)mShape[1], h = (int)hShape[2];
        var max = 0f;
        for (var i = 0; i < _texts.Length; i++)
        {
            var len = (int)Enumerable.Range(0, t).Sum(j => mask[i * t + j]);
            Assert.That((result[i].TokenCount, result[i].Dimensions), Is.EqualTo((len, h)));
            max = Math.Max(max, Reference.MaxAbsDiff(result[i].Vectors.ToArray(), Reference.Normalize(Reference.Rows(hidden, t, h, i, len), h)));
        }
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
        // MaxSim of two generated embeddings is Llm.Score's late-interaction score... for a late-interaction model; MiniLM
        // is not one, so compare with the library's MaxSim on the same outputs instead.
        var expected = LateInteraction.MaxSim(_llm.Encode(_texts[0], PoolingTask.TokenEmbed)[0].Outputs, _llm.Encode(_texts[1], PoolingTask.TokenEmbed)[0].Outputs);
        Assert.That(result[0].MaxSim(result[1]), Is.EqualTo(expected).Within(1e-4f));
    }

    [Test]
    public async Task DependencyInjectionPipelineCachesAndCancels()
    {
        var services = new ServiceCollection();
        var counter = new Counter();
        services.AddTokenEmbed(TestPaths.MiniLm, o => o.Device = "cpu")
            .UseDistributedCache(new MemoryDistributedCache(Options.Create(new MemoryDistributedCacheOptions())))
            .Use(inner => new CountingGenerator(inner, counter));
        using var provider = services.BuildServiceProvider();
        var generator = provider.GetRequiredService<IEmbeddingGenerator<string, Embedding<float>>>();
        var first = await generator.GenerateAsync(["late interaction"]);
        var second = await generator.GenerateAsync(["late interaction"]);
        Assert.That(counter.Calls, Is.EqualTo(1), "the second call is a cache hit");
        Assert.That(second[0].Vector.ToArray(), Is.EqualTo(first[0].Vector.ToArray()));

        var multi = provider.GetRequiredService<IEmbeddingGenerator<string, MultiVectorEmbedding>>();
        Assert.That(multi.GetService<Llm>(), Is.SameAs(provider.GetRequiredService<Llm>()), "one shared model");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), () => multi.GenerateAsync(["x"], cancellationToken: cts.Token));
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), () => generator.GenerateAsync(["not cached"], cancellationToken: cts.Token));
    }

    [Test]
    public void BadInputTypeIsNamed()
    {
        using var generator = new LlmMultiVectorGenerator(_llm);
        var options = new EmbeddingGenerationOptions { AdditionalProperties = new() { ["input_type"] = "passage" } };
        var e = Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync(["x"], options));
        Assert.That(e!.Message, Does.Contain("input_type").And.Contain("passage"));
    }

    private sealed class Counter
    {
        public int Calls;
    }

    private sealed class CountingGenerator(IEmbeddingGenerator<string, Embedding<float>> inner, Counter counter)
        : DelegatingEmbeddingGenerator<string, Embedding<float>>(inner)
    {
        public override Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values, EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
        {
            Interlocked.Increment(ref counter.Calls);
            return base.GenerateAsync(values, options, cancellationToken);
        }
    }
}
