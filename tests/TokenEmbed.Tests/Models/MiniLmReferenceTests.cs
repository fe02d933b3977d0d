using NUnit.Framework;
using System.Text.Json;
using TokenEmbed.Loading;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>The real all-MiniLM-L6-v2 checkpoint against ONNX Runtime's outputs (reference.safetensors).</summary>
[NonParallelizable]
public sealed class MiniLmReferenceTests
{
    private Llm _llm = null!;
    private SafeTensorsFile _ref = null!;
    private string _folder = null!;

    [OneTimeSetUp]
    public void Load()
    {
        _folder = TestPaths.MiniLm;
        _llm = new Llm(_folder, new LlmOptions { Device = "cpu" });
        _ref = SafeTensorsFile.Open(Path.Combine(_folder, "reference.safetensors"));
    }

    [OneTimeTearDown]
    public void Free()
    {
        _llm?.Dispose();
        _ref?.Dispose();
    }

    private static readonly string[] Batches = ["main", "long"];

    [TestCaseSource(nameof(Batches))]
    public void HiddenStatesMatchOnnxRuntime(string batch)
    {
        var (ids, shape) = Reference.ReadInt64(_ref, batch + ".input_ids");
        var (mask, _) = Reference.ReadInt64(_ref, batch + ".attention_mask");
        var (hidden, hShape) = Reference.ReadFloat32(_ref, batch + ".last_hidden_state");
        int b = (int)shape[0], t = (int)shape[1], h = (int)hShape[2];
        var prompts = Enumerable.Range(0, b).Select(r => Prompt.FromTokenIds(Reference.ValidIds(ids, mask, t, r))).ToArray();

        var raw = _llm.Encode(prompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var normalized = _llm.Encode(prompts, PoolingTask.TokenEmbed);

        float maxRaw = 0, maxNorm = 0;
        for (var r = 0; r < b; r++)
        {
            var len = prompts[r].TokenIds!.Count;
            Assert.That(raw[r].Outputs.Shape, Is.EqualTo(new[] { len, h }));
            var expected = Reference.Rows(hidden, t, h, r, len);
            maxRaw = Math.Max(maxRaw, Reference.MaxAbsDiff(raw[r].Outputs.Data, expected));
            maxNorm = Math.Max(maxNorm, Reference.MaxAbsDiff(normalized[r].Outputs.Data, Reference.Normalize(expected, h)));
        }
        TestContext.Out.WriteLine($"MiniLM {batch}: hidden max |diff| = {maxRaw:E2}, token_embed max |diff| = {maxNorm:E2}");
        Assert.That(maxRaw, Is.LessThanOrEqualTo(1e-4f));
        Assert.That(maxNorm, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void TextsTokenizeLikeTheReferenceAndEmbedMatches()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_folder, "texts.json")));
        var texts = doc.RootElement.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var main = doc.RootElement.GetProperty("batches")[0].GetProperty("text_indices").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        var (ids, shape) = Reference.ReadInt64(_ref, "main.input_ids");
        var (mask, _) = Reference.ReadInt64(_ref, "main.attention_mask");
        var (emb, eShape) = Reference.ReadFloat32(_ref, "main.sentence_embedding");
        int t = (int)shape[1], h = (int)eShape[1];

        var batchTexts = main.Select(i => texts[i]).ToArray();
        var outputs = _llm.Encode(batchTexts, PoolingTask.Embed);
        var max = 0f;
        for (var r = 0; r < main.Length; r++)
        {
            Assert.That(outputs[r].PromptTokenIds, Is.EqualTo(Reference.ValidIds(ids, mask, t, r)), $"token ids of text {main[r]}");
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { h }));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, emb.AsSpan(r * h, h)));
        }
        TestContext.Out.WriteLine($"MiniLM embed (mean pooling + normalize): max |diff| = {max:E2} over {main.Length} texts");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void LongTextWithoutTruncationIsAClearError()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_folder, "texts.json")));
        var longText = doc.RootElement.GetProperty("texts")[28].GetString()!;
        Assert.That(_llm.MaxModelLength, Is.EqualTo(256), "sentence_bert_config.json max_seq_length");
        var e = Assert.Throws<PromptTooLongException>(() => _llm.Encode(longText, PoolingTask.Embed))!;
        Assert.That(e.MaxTokens, Is.EqualTo(256));
        Assert.That(e.TokenCount, Is.GreaterThan(256));
        Assert.That(e.Message, Does.Contain("256"));

        var truncated = _llm.Encode(longText, PoolingTask.TokenEmbed, new PoolingParams { TruncatePromptTokens = -1 })[0];
        Assert.That(truncated.PromptTokenIds.Count, Is.EqualTo(256));
        Assert.That(truncated.PromptTokenIds[0], Is.EqualTo(101), "[CLS] kept");
        Assert.That(truncated.PromptTokenIds[^1], Is.EqualTo(102), "[SEP] kept");
        var full = _llm.Tokenize(longText);
        Assert.That(truncated.PromptTokenIds.Skip(1).Take(254), Is.EqualTo(full.Skip(full.Count - 1 - 254).Take(254)), "keeps the last content tokens");
    }

    [Test]
    public void BatchedEqualsOneByOne()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_folder, "texts.json")));
        var texts = doc.RootElement.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).Take(28).ToArray();
        using var small = new Llm(_folder, new LlmOptions { Device = "cpu", MaxBatchTokens = 200 });
        var batched = small.Encode(texts, PoolingTask.TokenEmbed);
        var max = 0f;
        for (var i = 0; i < texts.Length; i++)
        {
            var single = _llm.Encode(texts[i], PoolingTask.TokenEmbed)[0];
            Assert.That(batched[i].Prompt, Is.EqualTo(texts[i]));
            Assert.That(batched[i].Outputs.Shape, Is.EqualTo(single.Outputs.Shape));
            max = Math.Max(max, Reference.MaxAbsDiff(batched[i].Outputs.Data, single.Outputs.Data));
        }
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
    }
}
