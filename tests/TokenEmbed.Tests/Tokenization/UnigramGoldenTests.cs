using System.Collections.Concurrent;
using System.Text.Json;
using NUnit.Framework;
using TokenEmbed.Tests.Support;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Tests.Tokenization;

/// <summary>
/// The SentencePiece Unigram tokenizer (XLM-R layout proxy) reproduces Hugging Face tokenizers' goldens exactly,
/// case by case, with and without special tokens, in both tokenizer.json layouts: the current one (Sequence[
/// Precompiled, Strip, Replace] + Metaspace(prepend_scheme, split)) and the older one (Precompiled +
/// Sequence[WhitespaceSplit, Metaspace(add_prefix_space, str_rep)], model without "type").
/// </summary>
[TestFixture]
public sealed class UnigramGoldenTests
{
    public const string Fixture = "xlmr-unigram-proxy";

    private static readonly ConcurrentDictionary<string, Lazy<TextTokenizer>> Tokenizers = new();

    /// <summary>The two layouts: name → (tokenizer file, goldens file).</summary>
    private static readonly Dictionary<string, (string Tokenizer, string Goldens)> Layouts = new()
    {
        ["current"] = ("tokenizer.json", "goldens.json"),
        ["legacy"] = ("tokenizer.legacy.json", "goldens.legacy.json"),
    };

    public static IEnumerable<TestCaseData> Cases() =>
        Layouts.SelectMany(layout => GoldenCase.Load(Fixture, layout.Value.Goldens)
            .Select(c => new TestCaseData(layout.Key, c).SetArgDisplayNames($"{layout.Key}/{c.Name}")));

    [TestCaseSource(nameof(Cases))]
    public void Ids_with_special_tokens_match_the_golden(string layout, object golden)
    {
        var c = (GoldenCase)golden;
        Assert.That(Tokenizer(layout).Encode(c.Text, addSpecialTokens: true), Is.EqualTo(c.Ids), $"{layout}/{c.Name}");
    }

    [TestCaseSource(nameof(Cases))]
    public void Ids_without_special_tokens_match_the_golden(string layout, object golden)
    {
        var c = (GoldenCase)golden;
        Assert.That(Tokenizer(layout).Encode(c.Text, addSpecialTokens: false), Is.EqualTo(c.IdsNoSpecial), $"{layout}/{c.Name}");
    }

    [TestCase("current")]
    [TestCase("legacy")]
    public void Every_layout_has_45_golden_cases(string layout) =>
        Assert.That(GoldenCase.Load(Fixture, Layouts[layout].Goldens), Has.Count.EqualTo(45));

    [TestCase("current")]
    [TestCase("legacy")]
    public void Exposes_the_xlmr_vocabulary_layout(string layout)
    {
        var t = Tokenizer(layout);
        Assert.Multiple(() =>
        {
            Assert.That(t.NumSpecialTokensToAdd, Is.EqualTo(2));
            Assert.That(t.PadTokenId, Is.EqualTo(1));
            Assert.That(t.VocabSize, Is.EqualTo(1002));
            Assert.That(t.TokenToId("<s>"), Is.EqualTo(0));
            Assert.That(t.TokenToId("<pad>"), Is.EqualTo(1));
            Assert.That(t.TokenToId("</s>"), Is.EqualTo(2));
            Assert.That(t.TokenToId("<unk>"), Is.EqualTo(3));
            Assert.That(t.TokenToId("<mask>"), Is.EqualTo(1001));
            Assert.That(t.TokenToId("\u2581"), Is.EqualTo(5));   // SentencePiece id 4, shifted by the fairseq offset
            Assert.That(t.IdToToken(5), Is.EqualTo("\u2581"));
            Assert.That(t.IdToToken(1002), Is.Null);
            Assert.That(t.ApplyPostProcessor([7, 8]), Is.EqualTo(new[] { 0, 7, 8, 2 }));
        });
    }

    /// <summary>
    /// 600 random texts (mixed scripts, combining sequences, ZWJ emoji, special-token fragments, whitespace runs;
    /// goldens.fuzz.json from fuzz-goldens.mjs) give Hugging Face's ids, with and without special tokens.
    /// </summary>
    [TestCase("current")]
    [TestCase("legacy")]
    public void Random_texts_match_the_fuzz_goldens(string layout)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(GoldenCase.Folder(Fixture), "goldens.fuzz.json")));
        var t = Tokenizer(layout);
        var mismatches = new List<string>();
        int total = 0;
        foreach (var c in doc.RootElement.GetProperty("layouts").GetProperty(layout).EnumerateArray())
        {
            total++;
            string text = c.GetProperty("text").GetString()!;
            int[] ids = c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            int[] plain = c.GetProperty("ids_no_special").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            if (!t.Encode(text, addSpecialTokens: true).SequenceEqual(ids) || !t.Encode(text, addSpecialTokens: false).SequenceEqual(plain))
                mismatches.Add(JsonSerializer.Serialize(text));
        }
        TestContext.Out.WriteLine($"{layout}: {total - mismatches.Count}/{total} random texts match");
        Assert.Multiple(() =>
        {
            Assert.That(total, Is.EqualTo(600));
            Assert.That(mismatches, Is.Empty);
        });
    }

    [TestCase("current")]
    [TestCase("legacy")]
    public void Encoding_is_thread_safe(string layout) =>
        Assert.That(GoldenCase.ParallelMismatches(Tokenizer(layout), GoldenCase.Load(Fixture, Layouts[layout].Goldens), repeats: 4, threads: 4), Is.Empty);

    [Test]
    public void Ill_formed_input_does_not_throw()
    {
        var t = Tokenizer("current");
        Assert.Multiple(() =>
        {
            // A lone surrogate reads as U+FFFD, as when the text is sent to Rust as UTF-8.
            Assert.That(t.Encode("a\uD800b"), Is.EqualTo(t.Encode("a\uFFFDb")));
            Assert.That(() => t.Encode("\uFFFE\uFFFF\u0000 \U0010FFFF"), Throws.Nothing);
            Assert.That(() => t.Encode(null!), Throws.ArgumentNullException);
        });
    }

    /// <summary>The tokenizer of a layout; the legacy file is loaded from a temporary folder as tokenizer.json.</summary>
    internal static TextTokenizer Tokenizer(string layout) =>
        Tokenizers.GetOrAdd(layout, l => new Lazy<TextTokenizer>(() =>
        {
            using var temp = new TempFolder();
            File.Copy(Path.Combine(GoldenCase.Folder(Fixture), Layouts[l].Tokenizer), temp.File("tokenizer.json"));
            return TokenizerLoader.FromFolder(temp.Path) ?? throw new AssertionException($"no tokenizer found for layout {l}");
        })).Value;
}
