using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Tests.Support;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Tests.Tokenization;

/// <summary>
/// Byte-level BPE beyond the goldens: each BPE option, Split behavior and ByteLevel setting against Hugging Face's
/// ids for small tokenizer.json variants (Fixtures/tokenizers/hf-reference), the ModernBERT/Qwen3 facts the engine
/// reads, and load errors.
/// </summary>
[TestFixture]
public sealed class BpeTokenizerTests
{
    private static readonly ConcurrentDictionary<string, TextTokenizer> Variants = new();

    private TempFolder _temp = null!;

    public static IEnumerable<TestCaseData> ReferenceCases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(ReferencePath));
        foreach (var set in doc.RootElement.GetProperty("sets").EnumerateArray())
        {
            string name = set.GetProperty("name").GetString()!;
            int i = 0;
            foreach (var c in set.GetProperty("cases").EnumerateArray())
            {
                int[] ids = c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
                yield return new TestCaseData(name, c.GetProperty("text").GetString()!, ids).SetArgDisplayNames($"{name}[{i++}]");
            }
        }
    }

    [SetUp]
    public void CreateTempFolder() => _temp = new TempFolder();

    [TearDown]
    public void DeleteTempFolder() => _temp.Dispose();

    [TestCaseSource(nameof(ReferenceCases))]
    public void Variant_matches_hugging_face(string set, string text, int[] expected)
    {
        var tokenizer = Variants.GetOrAdd(set, LoadVariant);
        Assert.That(tokenizer.Encode(text, addSpecialTokens: false), Is.EqualTo(expected), $"{set}: {JsonSerializer.Serialize(text)}");
    }

    /// <summary>
    /// 600 random texts (whitespace runs, CRLF, contractions with ſ and the Kelvin sign, accents, CJK, RTL, Indic,
    /// astral letters/digits/emoji, special-token literals, control and format characters; goldens.fuzz.json from
    /// hf-reference/fuzz.mjs) give Hugging Face's ids, with and without special tokens.
    /// </summary>
    [TestCase("modernbert")]
    [TestCase("qwen3")]
    public void Random_texts_match_the_fuzz_goldens(string fixture)
    {
        var cases = GoldenCase.Load(fixture, "goldens.fuzz.json");
        var t = TokenizerGoldenTests.Tokenizer(fixture);
        var mismatches = cases
            .Where(c => !t.Encode(c.Text, addSpecialTokens: true).SequenceEqual(c.Ids) || !t.Encode(c.Text, addSpecialTokens: false).SequenceEqual(c.IdsNoSpecial))
            .Select(c => JsonSerializer.Serialize(c.Text))
            .ToList();
        TestContext.Out.WriteLine($"{fixture}: {cases.Count - mismatches.Count}/{cases.Count} random texts match");
        Assert.Multiple(() =>
        {
            Assert.That(cases, Has.Count.EqualTo(600));
            Assert.That(mismatches, Is.Empty);
        });
    }

    [Test]
    public void Modernbert_exposes_template_and_special_token_facts()
    {
        var t = TokenizerGoldenTests.Tokenizer("modernbert");
        Assert.Multiple(() =>
        {
            Assert.That(t.NumSpecialTokensToAdd, Is.EqualTo(2));
            Assert.That(t.PadTokenId, Is.EqualTo(50283));   // [PAD] of tokenizer_config.json
            Assert.That(t.VocabSize, Is.EqualTo(50368));    // 50280 model tokens, added tokens up to 50367
            Assert.That(t.TokenToId("[CLS]"), Is.EqualTo(50281));
            Assert.That(t.TokenToId("[MASK]"), Is.EqualTo(50284));
            Assert.That(t.TokenToId("Ġthe"), Is.EqualTo(253));
            Assert.That(t.IdToToken(253), Is.EqualTo("Ġthe"));
            Assert.That(t.ApplyPostProcessor([1, 2]), Is.EqualTo(new[] { 50281, 1, 2, 50282 }));
        });
    }

    [Test]
    public void Qwen3_adds_no_special_tokens_and_pads_with_endoftext()
    {
        var t = TokenizerGoldenTests.Tokenizer("qwen3");
        Assert.Multiple(() =>
        {
            Assert.That(t.NumSpecialTokensToAdd, Is.EqualTo(0));
            Assert.That(t.PadTokenId, Is.EqualTo(151643));  // <|endoftext|>, pad_token of tokenizer_config.json
            Assert.That(t.VocabSize, Is.EqualTo(151669));
            Assert.That(t.TokenToId("<|image_pad|>"), Is.EqualTo(151655));
            Assert.That(t.IdToToken(151668), Is.EqualTo("</think>"));
            Assert.That(t.ApplyPostProcessor([1, 2]), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(t.Encode("Hello", addSpecialTokens: true), Is.EqualTo(new[] { 9707 }));
        });
    }

    [Test]
    public void Merge_with_a_token_missing_from_the_vocabulary_throws_naming_the_merge()
    {
        string path = WriteTokenizer("""
            {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}
            """);
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp.Path));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("merges[0]").And.Contain("\"ab\"").And.Contain("tokenizer.json"));
            Assert.That(e.FilePath, Is.EqualTo(path));
        });
    }

    [TestCase("""["a b c"]""", "merges[0]")]
    [TestCase("""[["a"]]""", "merges[0]")]
    [TestCase("""[1]""", "merges[0]")]
    public void Malformed_merges_throw(string merges, string where)
    {
        WriteTokenizer($$$"""{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": {{{merges}}}}}""");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp.Path));
        Assert.That(e!.Message, Does.Contain(where));
    }

    [Test]
    public void Bpe_dropout_and_missing_unk_token_are_load_errors()
    {
        WriteTokenizer("""{"model": {"type": "BPE", "dropout": 0.1, "vocab": {"a": 0}, "merges": []}}""");
        Assert.That(() => TokenizerLoader.FromFolder(_temp.Path), Throws.InstanceOf<ModelLoadException>().With.Message.Contain("dropout"));
        WriteTokenizer("""{"model": {"type": "BPE", "unk_token": "<unk>", "vocab": {"a": 0}, "merges": []}}""");
        Assert.That(() => TokenizerLoader.FromFolder(_temp.Path), Throws.InstanceOf<ModelLoadException>().With.Message.Contain("<unk>"));
    }

    [Test]
    public void Split_pattern_that_dotnet_cannot_compile_throws_naming_the_field()
    {
        WriteTokenizer("""
            {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a(?<=b"}, "behavior": "Isolated", "invert": false},
             "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}
            """);
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp.Path));
        Assert.That(e!.Message, Does.Contain("pre_tokenizer.pattern"));
        WriteTokenizer("""
            {"pre_tokenizer": {"type": "Split", "pattern": {"Regex": "a"}, "behavior": "Sideways", "invert": false},
             "model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}}
            """);
        e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp.Path));
        Assert.That(e!.Message, Does.Contain("Sideways"));
    }

    [Test]
    public void Vocab_json_and_merges_txt_without_tokenizer_json_are_rejected()
    {
        // The slow GPT-2/RoBERTa/Qwen2 files: the pre-tokenizer and template depend on the tokenizer class, so
        // they are not guessed; tokenizer.json is required.
        File.WriteAllText(_temp.File("vocab.json"), """{"a": 0, "b": 1, "ab": 2}""");
        File.WriteAllText(_temp.File("merges.txt"), "#version: 0.2\na b\n");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp.Path));
        Assert.That(e!.Message, Does.Contain("vocab.json").And.Contain("tokenizer.json"));
    }

    private static string ReferencePath => TestPaths.Fixture("tokenizers", "hf-reference", "bpe-components.json");

    private string WriteTokenizer(string json)
    {
        string path = _temp.File("tokenizer.json");
        File.WriteAllText(path, json);
        return path;
    }

    private static TextTokenizer LoadVariant(string set)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(ReferencePath));
        var entry = doc.RootElement.GetProperty("sets").EnumerateArray().Single(s => s.GetProperty("name").GetString() == set);
        if (!entry.TryGetProperty("fixture", out var fixture)) return FromJson(entry.GetProperty("tokenizer").GetRawText());
        if (!entry.TryGetProperty("pre_tokenizer", out var pre)) return TokenizerGoldenTests.Tokenizer(fixture.GetString()!);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenCase.Folder(fixture.GetString()!), "tokenizer.json")))!;
        json["pre_tokenizer"] = JsonNode.Parse(pre.GetRawText());
        return FromJson(json.ToJsonString());
    }

    private static TextTokenizer FromJson(string json)
    {
        using var folder = new TempFolder();
        File.WriteAllText(folder.File("tokenizer.json"), json);
        return TokenizerLoader.FromTokenizerJson(folder.File("tokenizer.json"));
    }
}
