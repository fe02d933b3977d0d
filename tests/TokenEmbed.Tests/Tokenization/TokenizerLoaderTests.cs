using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Tests.Tokenization;

/// <summary>Finding and loading tokenizer files: the vocab.txt fallback, folders without tokenizer files, broken files.</summary>
[TestFixture]
public sealed class TokenizerLoaderTests
{
    private string _temp = "";

    [SetUp]
    public void CreateTempFolder()
    {
        _temp = Path.Combine(Path.GetTempPath(), "tokenembed-tok-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_temp);
    }

    [TearDown]
    public void DeleteTempFolder()
    {
        if (Directory.Exists(_temp)) Directory.Delete(_temp, recursive: true);
    }

    [TestCase("bert-base-uncased")]
    [TestCase("answerai-colbert-small-v1")]
    public void Vocab_txt_fallback_matches_every_golden(string fixture)
    {
        foreach (var file in Directory.GetFiles(GoldenCase.Folder(fixture)))
        {
            if (Path.GetFileName(file) != "tokenizer.json") File.Copy(file, Path.Combine(_temp, Path.GetFileName(file)));
        }
        var tokenizer = TokenizerLoader.FromFolder(_temp);
        Assert.That(tokenizer, Is.Not.Null);

        var mismatches = new List<string>();
        var cases = GoldenCase.Load(fixture);
        foreach (var c in cases)
        {
            if (!tokenizer!.Encode(c.Text, addSpecialTokens: true).SequenceEqual(c.Ids)) mismatches.Add($"{c.Name} (with special tokens)");
            if (!tokenizer.Encode(c.Text, addSpecialTokens: false).SequenceEqual(c.IdsNoSpecial)) mismatches.Add($"{c.Name} (without special tokens)");
        }
        Assert.Multiple(() =>
        {
            Assert.That(cases, Has.Count.EqualTo(45));
            Assert.That(mismatches, Is.Empty, "cases whose ids differ from the goldens");
            Assert.That(tokenizer!.NumSpecialTokensToAdd, Is.EqualTo(2));
            Assert.That(tokenizer.PadTokenId, Is.EqualTo(fixture == "bert-base-uncased" ? 0 : 103));
            Assert.That(tokenizer.VocabSize, Is.EqualTo(30522));
        });
    }

    [Test]
    public void Folder_without_tokenizer_files_gives_null()
    {
        File.WriteAllText(Path.Combine(_temp, "config.json"), "{}");
        Assert.That(TokenizerLoader.FromFolder(_temp), Is.Null);
    }

    [Test]
    public void Missing_folder_gives_null()
    {
        Assert.That(TokenizerLoader.FromFolder(Path.Combine(_temp, "absent")), Is.Null);
    }

    [TestCase("model", "MadeUpModel")]
    [TestCase("normalizer", "MadeUpNormalizer")]
    [TestCase("pre_tokenizer", "MadeUpPreTokenizer")]
    [TestCase("post_processor", "MadeUpProcessor")]
    public void Unsupported_component_type_throws_naming_file_and_type(string section, string type)
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenCase.Folder("bert-base-uncased"), "tokenizer.json")))!;
        if (json[section] is JsonObject existing) existing["type"] = type;
        else json[section] = new JsonObject { ["type"] = type };
        string path = Path.Combine(_temp, "tokenizer.json");
        File.WriteAllText(path, json.ToJsonString());

        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain(type));
            Assert.That(e.Message, Does.Contain("tokenizer.json"));
            Assert.That(e.FilePath, Is.EqualTo(path));
        });
    }

    [Test]
    public void Unsupported_type_nested_in_a_sequence_throws()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenCase.Folder("bert-base-uncased"), "tokenizer.json")))!;
        json["normalizer"] = JsonNode.Parse("""{"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "MadeUpNormalizer"}]}""");
        File.WriteAllText(Path.Combine(_temp, "tokenizer.json"), json.ToJsonString());

        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp));
        Assert.That(e!.Message, Does.Contain("MadeUpNormalizer").And.Contain("normalizer.normalizers[1]"));
    }

    [TestCase("{ \"model\": { \"type\": \"WordPiece\", ")]
    [TestCase("not json at all")]
    [TestCase("")]
    public void Malformed_tokenizer_json_throws_naming_the_file(string content)
    {
        string path = Path.Combine(_temp, "tokenizer.json");
        File.WriteAllText(path, content);

        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp));
        Assert.Multiple(() =>
        {
            Assert.That(e!.Message, Does.Contain("tokenizer.json"));
            Assert.That(e.FilePath, Is.EqualTo(path));
        });
    }

    [Test]
    public void Tokenizer_json_without_a_model_throws()
    {
        File.WriteAllText(Path.Combine(_temp, "tokenizer.json"), """{"added_tokens": [], "normalizer": null}""");
        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp));
        Assert.That(e!.Message, Does.Contain("model"));
    }

    [Test]
    public void Malformed_tokenizer_config_throws_naming_the_file()
    {
        File.Copy(Path.Combine(GoldenCase.Folder("bert-base-uncased"), "vocab.txt"), Path.Combine(_temp, "vocab.txt"));
        string path = Path.Combine(_temp, "tokenizer_config.json");
        File.WriteAllText(path, "{ \"do_lower_case\": ");

        var e = Assert.Throws<ModelLoadException>(() => TokenizerLoader.FromFolder(_temp));
        Assert.That(e!.FilePath, Is.EqualTo(path));
    }

    [Test]
    public void Absent_sections_are_tolerated()
    {
        // A WordPiece model (its "type" left out, as in older files) with no normalizer, pre-tokenizer, post-processor
        // or added tokens: the whole text is one word.
        File.WriteAllText(Path.Combine(_temp, "tokenizer.json"), """
            {"model": {"unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                       "vocab": {"[UNK]": 0, "ab": 1, "##c": 2, "c": 3}}}
            """);
        var t = TokenizerLoader.FromFolder(_temp)!;
        Assert.Multiple(() =>
        {
            Assert.That(t.Encode("abc"), Is.EqualTo(new[] { 1, 2 }));
            Assert.That(t.Encode("ab c"), Is.EqualTo(new[] { 0 }));
            Assert.That(t.Encode(""), Is.Empty);
            Assert.That(t.NumSpecialTokensToAdd, Is.EqualTo(0));
            Assert.That(t.PadTokenId, Is.Null);
            Assert.That(t.VocabSize, Is.EqualTo(4));
        });
    }

    [Test]
    public void Added_token_flags_are_honoured()
    {
        // Ids as Hugging Face tokenizers 0.22.2 gives them for this file.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenCase.Folder("bert-base-uncased"), "tokenizer.json")))!;
        var added = json["added_tokens"]!.AsArray();
        foreach (var t in added)
        {
            if ((string?)t!["content"] == "[MASK]") { t["lstrip"] = true; t["rstrip"] = true; }
        }
        added.Add(JsonNode.Parse("""{"id": 30522, "content": "Hello", "single_word": true, "lstrip": false, "rstrip": false, "normalized": true, "special": false}"""));
        added.Add(JsonNode.Parse("""{"id": 30523, "content": "Wor", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": false}"""));
        File.WriteAllText(Path.Combine(_temp, "tokenizer.json"), json.ToJsonString());
        var tok = TokenizerLoader.FromFolder(_temp)!;
        Assert.Multiple(() =>
        {
            // "Hello" is normalized (matches "HELLO" as "hello") and single-word (not inside "xhello"); it is not in the
            // model vocabulary, so it gets the next id, 30522, and "Wor" 30523 (lstrip takes the spaces before it).
            Assert.That(tok.Encode("HELLO xhello", addSpecialTokens: false), Is.EqualTo(ExpectedFromHf("HELLO xhello")));
            Assert.That(tok.Encode("a [MASK] b  Wor  World", addSpecialTokens: false), Is.EqualTo(ExpectedFromHf("a [MASK] b  Wor  World")));
        });

        static int[] ExpectedFromHf(string text) => text switch
        {
            "HELLO xhello" => [30522, 1060, 18223, 2080],
            "a [MASK] b  Wor  World" => [1037, 103, 1038, 30523, 30523, 25510],
            _ => throw new ArgumentOutOfRangeException(nameof(text)),
        };
    }
}
