using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Api;

/// <summary>
/// vLLM semantics of Encode on the golden BertModel folder, which has no tokenizer files (vLLM
/// skip_tokenizer_init): token-id prompts work, text prompts fail clearly.
/// </summary>
public sealed class EncodeApiTests
{
    private Llm _llm = null!;
    private static readonly int[] Ids = [2, 17, 345, 999, 5, 88, 3];

    [OneTimeSetUp]
    public void Load() => _llm = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });

    [OneTimeTearDown]
    public void Free() => _llm?.Dispose();

    private float[] Raw(int[] ids) => _llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, new PoolingParams { Normalize = false })[0].Outputs.Data;

    [Test]
    public void TextPromptWithoutTokenizerIsAClearError()
    {
        var e = Assert.Throws<InvalidOperationException>(() => _llm.Encode("hello", PoolingTask.TokenEmbed))!;
        Assert.That(e.Message, Does.Contain("tokenizer").And.Contain("FromTokenIds"));
    }

    [Test]
    public void TokenizerIdsBeyondTheEmbeddingTableAreAClearError()
    {
        // The golden model has 1000 embeddings; bert-base-uncased's tokenizer gives ids up to 30521.
        using var f = new TempFolder().CopyFrom(TestPaths.Fixture("goldens", "bert"), "config.json", "model.safetensors");
        File.Copy(Path.Combine(TestPaths.Fixture("tokenizers", "bert-base-uncased"), "tokenizer.json"), f.File("tokenizer.json"));
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => llm.Encode("hello world", PoolingTask.TokenEmbed))!;
        Assert.That(e.Message, Does.Contain("7592").And.Contain("from the tokenizer").And.Contain("1000"));
    }

    [Test]
    public void TokenEmbedKeepsEveryTokenAndNormalizes()
    {
        var o = _llm.Encode(Prompt.FromTokenIds(Ids), PoolingTask.TokenEmbed)[0];
        Assert.That(o.Prompt, Is.Null);
        Assert.That(o.PromptTokenIds, Is.EqualTo(Ids));
        Assert.That(o.Outputs.Shape, Is.EqualTo(new[] { Ids.Length, 64 }));
        Assert.That(Reference.MaxAbsDiff(o.Outputs.Data, Reference.Normalize(Raw(Ids), 64)), Is.LessThan(1e-6f));
    }

    [Test]
    public void MatryoshkaCutsBeforeNormalizing()
    {
        var o = _llm.Encode(Prompt.FromTokenIds(Ids), PoolingTask.TokenEmbed, new PoolingParams { Dimensions = 16 })[0];
        Assert.That(o.Outputs.Shape, Is.EqualTo(new[] { Ids.Length, 16 }));
        var raw = Raw(Ids);
        var cut = Enumerable.Range(0, Ids.Length).SelectMany(i => raw.Skip(i * 64).Take(16)).ToArray();
        Assert.That(Reference.MaxAbsDiff(o.Outputs.Data, Reference.Normalize(cut, 16)), Is.LessThan(1e-6f));
    }

    [Test]
    public void EmbedOfAPlainEncoderIsTheNormalizedClsState()
    {
        var o = _llm.Encode(Prompt.FromTokenIds(Ids), PoolingTask.Embed)[0];
        Assert.That(o.Outputs.Shape, Is.EqualTo(new[] { 64 }));
        Assert.That(Reference.MaxAbsDiff(o.Outputs.Data, Reference.Normalize(Raw(Ids).Take(64).ToArray(), 64)), Is.LessThan(1e-6f));
    }

    [Test]
    public void BadDimensionsAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => _llm.Encode(Prompt.FromTokenIds(Ids), PoolingTask.TokenEmbed, new PoolingParams { Dimensions = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => _llm.Encode(Prompt.FromTokenIds(Ids), PoolingTask.TokenEmbed, new PoolingParams { Dimensions = 65 }));
    }

    [Test]
    public void TokenIdsOutsideTheVocabularyAndEmptyPromptsAreRejected()
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => _llm.Encode(Prompt.FromTokenIds([2, 1000, 3]), PoolingTask.TokenEmbed))!;
        Assert.That(e.Message, Does.Contain("1000"));
        Assert.Throws<ArgumentOutOfRangeException>(() => _llm.Encode(Prompt.FromTokenIds([-1]), PoolingTask.TokenEmbed));
        Assert.Throws<ArgumentException>(() => _llm.Encode(Prompt.FromTokenIds([]), PoolingTask.TokenEmbed));
    }

    [Test]
    public void TooLongPromptsFailUnlessTruncated()
    {
        var ids = Enumerable.Range(0, 70).Select(i => 4 + i).ToArray();
        Assert.That(_llm.MaxModelLength, Is.EqualTo(64));
        var e = Assert.Throws<PromptTooLongException>(() => _llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed))!;
        Assert.That((e.TokenCount, e.MaxTokens, e.PromptIndex), Is.EqualTo((70, 64, 0)));

        var last10 = _llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, new PoolingParams { TruncatePromptTokens = 10 })[0];
        Assert.That(last10.PromptTokenIds, Is.EqualTo(ids[^10..]));
        var toMax = _llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, new PoolingParams { TruncatePromptTokens = -1 })[0];
        Assert.That(toMax.PromptTokenIds, Is.EqualTo(ids[^64..]));
        Assert.Throws<ArgumentOutOfRangeException>(() => _llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, new PoolingParams { TruncatePromptTokens = 65 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => _llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, new PoolingParams { TruncatePromptTokens = 0 }));
    }

    [Test]
    public void OutputsComeBackInInputOrderAcrossBatches()
    {
        using var tiny = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu", MaxBatchTokens = 20 });
        var rng = new Random(7);
        var prompts = Enumerable.Range(0, 12).Select(i => Prompt.FromTokenIds(Enumerable.Range(0, 1 + rng.Next(30)).Select(_ => rng.Next(1000)).ToArray())).ToArray();
        var batched = tiny.Encode(prompts, PoolingTask.TokenEmbed);
        for (var i = 0; i < prompts.Length; i++)
        {
            var single = _llm.Encode(prompts[i], PoolingTask.TokenEmbed)[0];
            Assert.That(batched[i].PromptTokenIds, Is.EqualTo(prompts[i].TokenIds));
            Assert.That(Reference.MaxAbsDiff(batched[i].Outputs.Data, single.Outputs.Data), Is.LessThan(1e-5f), $"prompt {i}");
        }
    }

    [Test]
    public void DisposedInstanceRefusesWork()
    {
        var llm = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });
        llm.Dispose();
        Assert.Throws<ObjectDisposedException>(() => llm.Encode(Prompt.FromTokenIds(Ids), PoolingTask.TokenEmbed));
    }

    [Test]
    public void BadOptionsAreRejected()
    {
        var folder = TestPaths.Fixture("goldens", "bert");
        Assert.Throws<ArgumentException>(() => new Llm(folder, new LlmOptions { Device = "tpu" }));
        Assert.Throws<ArgumentException>(() => new Llm(folder, new LlmOptions { Device = "cpu", DType = "int4" }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Llm(folder, new LlmOptions { Device = "cpu", MaxModelLength = 65 }));
    }
}
