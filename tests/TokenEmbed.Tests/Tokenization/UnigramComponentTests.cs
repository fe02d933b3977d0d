using System.Text.Json;
using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Tests.Support;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Tests.Tokenization;

/// <summary>
/// The SentencePiece components one by one, with expectations worked out by hand from Hugging Face's rules:
/// Unigram (Viterbi, unk penalty, fused unk, byte fallback), Metaspace (prepend schemes, split, legacy fields),
/// Precompiled (nmt_nfkc facts), Strip, Replace, and their load errors.
/// </summary>
[TestFixture]
public sealed class UnigramComponentTests
{
    private const string FakeFile = "/models/x/tokenizer.json";

    // ---- Unigram ----

    private static UnigramModel Model(bool byteFallback = false, int? unkId = 0, params (string, double)[] extra)
    {
        var vocab = new List<(string, double)> { ("<unk>", 0), ("a", -1), ("b", -2), ("ab", -2.5), ("c", -3) };
        vocab.AddRange(extra);
        return new UnigramModel(vocab, unkId, byteFallback, FakeFile);
    }

    private static int[] Ids(TokenModel model, string word)
    {
        var ids = new List<int>();
        model.Tokenize(word, ids);
        return ids.ToArray();
    }

    [TestCase("ab", new[] { 3 })]            // ab (-2.5) beats a + b (-3)
    [TestCase("ba", new[] { 2, 1 })]
    [TestCase("abc", new[] { 3, 4 })]
    [TestCase("xyz", new[] { 0 })]           // consecutive unknown characters: one unk
    [TestCase("axyb", new[] { 1, 0, 2 })]
    [TestCase("a\U0001F600\U0001F600b", new[] { 1, 0, 2 })]   // astral characters are one position each
    [TestCase("<unk>x", new[] { 0 })]        // the piece <unk> has unk_id, so it fuses with the unknown x
    public void Unigram_takes_the_best_segmentation(string word, int[] expected) =>
        Assert.That(Ids(Model(), word), Is.EqualTo(expected));

    [Test]
    public void Unigram_unknown_characters_cost_min_score_minus_10()
    {
        Assert.Multiple(() =>
        {
            // "xy" (-30) against unk x + unk y at min_score - 10 = -40 each: the piece wins, and a lone x is unk.
            Assert.That(Ids(Model(false, 0, ("xy", -30)), "xyx"), Is.EqualTo(new[] { 5, 0 }));
            // Pieces are always taken over unk where they exist, even several low-scoring ones.
            Assert.That(Ids(Model(), "ccc"), Is.EqualTo(new[] { 4, 4, 4 }));
            // A single-character piece takes its position from unk however low its score.
            Assert.That(Ids(Model(false, 0, ("x", -100)), "x"), Is.EqualTo(new[] { 5 }));
        });
    }

    [Test]
    public void Unigram_byte_fallback_uses_byte_pieces_only_when_all_exist()
    {
        var model = Model(true, 0, ("<0x78>", -5), ("<0x79>", -5), ("<0xC3>", -5));
        Assert.Multiple(() =>
        {
            Assert.That(Ids(model, "axy"), Is.EqualTo(new[] { 1, 5, 6 }));
            Assert.That(Ids(model, "\u00E9"), Is.EqualTo(new[] { 0 }));   // C3 A9: no <0xA9>, so unk
            Assert.That(Ids(Model(false, 0, ("<0x78>", -5)), "x"), Is.EqualTo(new[] { 0 }));   // off: unk
        });
    }

    [Test]
    public void Unigram_without_unk_id_rejects_unknown_text_with_a_typed_exception()
    {
        var model = Model(false, null);
        Assert.Multiple(() =>
        {
            Assert.That(Ids(model, "ab"), Is.EqualTo(new[] { 3 }));
            Assert.That(() => Ids(model, "x"), Throws.ArgumentException);
        });
    }

    [Test]
    public void Unigram_vocabulary_lookups()
    {
        var model = Model();
        Assert.Multiple(() =>
        {
            Assert.That(model.Count, Is.EqualTo(5));
            Assert.That(model.MaxId, Is.EqualTo(4));
            Assert.That(model.TokenToId("ab"), Is.EqualTo(3));
            Assert.That(model.TokenToId("zz"), Is.Null);
            Assert.That(model.IdToToken(4), Is.EqualTo("c"));
            Assert.That(model.IdToToken(5), Is.Null);
        });
    }

    [TestCase("""{"type": "Unigram", "unk_id": 7, "vocab": [["<unk>", 0], ["a", -1]]}""", "unk_id")]
    [TestCase("""{"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["a"]]}""", "model.vocab[1]")]
    [TestCase("""{"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], [3, -1]]}""", "model.vocab[1]")]
    [TestCase("""{"type": "Unigram", "unk_id": 0, "vocab": []}""", "empty")]
    [TestCase("""{"type": "Unigram", "unk_id": 0}""", "model.vocab")]
    public void Unigram_bad_model_json_throws_naming_file_and_field(string modelJson, string field)
    {
        var e = Assert.Throws<ModelLoadException>(() => TokenModel.FromJson(Component(modelJson, "model")));
        Assert.That(e!.Message, Does.Contain("tokenizer.json").And.Contain(field));
    }

    // ---- Metaspace ----

    private static string[] Words(TextPreTokenizer p, string text, bool atInputStart = true)
    {
        var words = new List<ReadOnlyMemory<char>>();
        p.PreTokenize(text.AsMemory(), words, atInputStart);
        return words.Select(w => w.ToString()).ToArray();
    }

    private static TextPreTokenizer Metaspace(string json) => TextPreTokenizer.FromJson(Component(json, "pre_tokenizer"))!;

    [TestCase("always", true, "Hello world", new[] { "▁Hello", "▁world" })]
    [TestCase("always", true, " Hello", new[] { "▁Hello" })]                 // a leading space is the prefix
    [TestCase("always", true, "▁Hello", new[] { "▁Hello" })]
    [TestCase("always", true, "a  b", new[] { "▁a", "▁▁b" })]                // a run of ▁ stays with the next word
    [TestCase("always", true, "a ", new[] { "▁a", "▁" })]
    [TestCase("never", true, "Hello world", new[] { "Hello", "▁world" })]
    [TestCase("always", false, "Hello world", new[] { "▁Hello▁world" })]
    [TestCase("first", true, "Hello world", new[] { "▁Hello", "▁world" })]
    public void Metaspace_replaces_spaces_prepends_and_splits(string scheme, bool split, string text, string[] expected)
    {
        var p = Metaspace($$"""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "{{scheme}}", "split": {{(split ? "true" : "false")}}}""");
        Assert.That(Words(p, text), Is.EqualTo(expected));
    }

    [Test]
    public void Metaspace_first_prepends_only_at_the_start_of_the_input()
    {
        var p = Metaspace("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": true}""");
        Assert.Multiple(() =>
        {
            Assert.That(Words(p, "Hello world", atInputStart: false), Is.EqualTo(new[] { "Hello", "▁world" }));
            Assert.That(Words(p, "Hello world", atInputStart: true), Is.EqualTo(new[] { "▁Hello", "▁world" }));
        });
    }

    [TestCase("""{"type": "Metaspace", "replacement": "▁", "str_rep": "▁", "add_prefix_space": true}""", new[] { "▁Hello", "▁world" })]
    [TestCase("""{"type": "Metaspace", "replacement": "▁", "str_rep": "▁", "add_prefix_space": false}""", new[] { "Hello", "▁world" })]
    [TestCase("""{"type": "Metaspace", "replacement": "_", "add_prefix_space": true, "split": false}""", new[] { "_Hello_world" })]
    public void Metaspace_reads_the_legacy_fields(string json, string[] expected) =>
        Assert.That(Words(Metaspace(json), "Hello world"), Is.EqualTo(expected));

    [TestCase("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}""", "prepend_scheme")]
    [TestCase("""{"type": "Metaspace", "replacement": "ab"}""", "replacement")]
    [TestCase("""{"type": "Metaspace", "prepend_scheme": "always"}""", "replacement")]
    public void Metaspace_bad_fields_throw_naming_them(string json, string field)
    {
        var e = Assert.Throws<ModelLoadException>(() => Metaspace(json));
        Assert.That(e!.Message, Does.Contain("tokenizer.json").And.Contain(field));
    }

    [Test]
    public void Metaspace_first_in_the_whole_pipeline_skips_pieces_after_an_added_token()
    {
        // The fixture with prepend_scheme "first": text after "<s>" is not at the start of the input, so its first
        // word gets no ▁; the pieces' concatenation shows what the model was given.
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenCase.Folder(UnigramGoldenTests.Fixture), "tokenizer.json")))!;
        json["pre_tokenizer"]!["prepend_scheme"] = "first";
        using var temp = new TempFolder();
        File.WriteAllText(temp.File("tokenizer.json"), json.ToJsonString());
        var t = TokenizerLoader.FromFolder(temp.Path)!;

        string Pieces(string text) => string.Concat(t.Encode(text, addSpecialTokens: false).Select(id => t.IdToToken(id)));
        Assert.Multiple(() =>
        {
            Assert.That(Pieces("hello world"), Is.EqualTo("▁hello▁world"));
            Assert.That(Pieces("<s>hello world"), Is.EqualTo("<s>hello▁world"));
            Assert.That(Pieces("<s> hello"), Is.EqualTo("<s>▁hello"));
        });
    }

    // ---- Precompiled, Strip, Replace ----

    private static TextNormalizer FixtureNormalizer()
    {
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(GoldenCase.Folder(UnigramGoldenTests.Fixture), "tokenizer.legacy.json")))!;
        return TextNormalizer.FromJson(Component(json["normalizer"]!.ToJsonString(), "normalizer"))!;
    }

    [TestCase("ｶﾀｶﾅ", "カタカナ")]          // half-width katakana (NFKC)
    [TestCase("ﬁ ①", "fi 1")]             // ligature, circled digit (NFKC)
    [TestCase("ＡＢＣ", "ABC")]             // full-width Latin (NFKC)
    [TestCase("a\u00A0b\u3000c", "a b c")] // no-break and ideographic spaces (nmt: spaces)
    [TestCase("Cafe\u0301", "Café")]       // e + combining acute: one grapheme, composed (NFC)
    // Graphemes under 6 UTF-8 bytes take the FIRST (shortest) match: Hugging Face tokenizers 0.22.2 gives the token
    // "Â" for A + U+0302 + U+0300 and "é" for e + two acutes (SentencePiece itself would take the longest, "Ầ").
    [TestCase("A\u0302\u0300", "\u00C2")]
    [TestCase("e\u0301\u0301", "\u00E9")]
    [TestCase("x\r\ny", "x\r\ny")]           // no rule for "\r", "\n" or "\r\n"
    public void Precompiled_applies_the_nmt_nfkc_rules(string text, string expected) =>
        Assert.That(FixtureNormalizer().Normalize(text), Is.EqualTo(expected));

    [Test]
    public void Precompiled_returns_unchanged_text_as_is()
    {
        const string text = "plain ascii text";
        Assert.That(FixtureNormalizer().Normalize(text), Is.SameAs(text));
    }

    [TestCase("AAAA")]        // 3 bytes: shorter than the header
    [TestCase("/////w==")]    // trie size 0xFFFFFFFF
    [TestCase("not base64!")]
    public void Precompiled_malformed_charsmap_throws_naming_file_and_field(string charsmap)
    {
        var e = Assert.Throws<ModelLoadException>(() =>
            TextNormalizer.FromJson(Component($$"""{"type": "Precompiled", "precompiled_charsmap": "{{charsmap}}"}""", "normalizer")));
        Assert.That(e!.Message, Does.Contain("tokenizer.json").And.Contain("precompiled_charsmap"));
    }

    [TestCase(false, true, "  a b \t\n", "  a b")]
    [TestCase(true, false, "  a b \t", "a b \t")]
    [TestCase(true, true, "\u3000a\u2009", "a")]
    public void Strip_removes_whitespace_at_the_chosen_ends(bool left, bool right, string text, string expected)
    {
        var n = TextNormalizer.FromJson(Component($$"""{"type": "Strip", "strip_left": {{(left ? "true" : "false")}}, "strip_right": {{(right ? "true" : "false")}}}""", "normalizer"))!;
        Assert.That(n.Normalize(text), Is.EqualTo(expected));
    }

    [TestCase("""{"type": "Replace", "pattern": {"Regex": " {2,}"}, "content": "▁"}""", "a   b  c d", "a▁b▁c d")]
    [TestCase("""{"type": "Replace", "pattern": {"String": "x"}, "content": "$1"}""", "axbx", "a$1b$1")]
    [TestCase("""{"type": "Replace", "pattern": {"Regex": "(a)"}, "content": "$1$1"}""", "ba", "b$1$1")]
    public void Replace_substitutes_content_literally(string json, string text, string expected) =>
        Assert.That(TextNormalizer.FromJson(Component(json, "normalizer"))!.Normalize(text), Is.EqualTo(expected));

    [TestCase("""{"type": "Replace", "pattern": {"Regex": "(unclosed"}, "content": ""}""", "Regex")]
    [TestCase("""{"type": "Replace", "pattern": {"Glob": "*"}, "content": ""}""", "pattern")]
    [TestCase("""{"type": "Replace", "pattern": {"String": "a"}}""", "content")]
    public void Replace_bad_fields_throw_naming_them(string json, string field)
    {
        var e = Assert.Throws<ModelLoadException>(() => TextNormalizer.FromJson(Component(json, "normalizer")));
        Assert.That(e!.Message, Does.Contain("tokenizer.json").And.Contain(field));
    }

    private static JsonComponent Component(string json, string path) =>
        new(JsonDocument.Parse(json).RootElement.Clone(), FakeFile, path);
}
