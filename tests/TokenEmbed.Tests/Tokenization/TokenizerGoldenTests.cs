using System.Collections.Concurrent;
using NUnit.Framework;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Tests.Tokenization;

/// <summary>
/// The tokenizer loaded from each fixture's tokenizer.json reproduces the Hugging Face goldens exactly,
/// case by case, with and without special tokens.
/// </summary>
[TestFixture]
public sealed class TokenizerGoldenTests
{
    private static readonly ConcurrentDictionary<string, TextTokenizer> Tokenizers = new();

    public static IEnumerable<TestCaseData> Cases() =>
        GoldenCase.WordPieceFixtures.Concat(GoldenCase.BpeFixtures).SelectMany(GoldenCase.Load).Select(c => new TestCaseData(c).SetArgDisplayNames(c.ToString()));

    [TestCaseSource(nameof(Cases))]
    public void Ids_with_special_tokens_match_the_golden(object golden)
    {
        var c = (GoldenCase)golden;
        Assert.That(Tokenizer(c.Fixture).Encode(c.Text, addSpecialTokens: true), Is.EqualTo(c.Ids), c.ToString());
    }

    [TestCaseSource(nameof(Cases))]
    public void Ids_without_special_tokens_match_the_golden(object golden)
    {
        var c = (GoldenCase)golden;
        Assert.That(Tokenizer(c.Fixture).Encode(c.Text, addSpecialTokens: false), Is.EqualTo(c.IdsNoSpecial), c.ToString());
    }

    [TestCase("bert-base-uncased", 0)]
    [TestCase("answerai-colbert-small-v1", 103)]
    public void Exposes_vocabulary_and_special_token_facts(string fixture, int padId)
    {
        var t = Tokenizer(fixture);
        Assert.Multiple(() =>
        {
            Assert.That(t.NumSpecialTokensToAdd, Is.EqualTo(2));
            Assert.That(t.PadTokenId, Is.EqualTo(padId));
            Assert.That(t.VocabSize, Is.EqualTo(30522));
            Assert.That(t.TokenToId("[CLS]"), Is.EqualTo(101));
            Assert.That(t.TokenToId("[SEP]"), Is.EqualTo(102));
            Assert.That(t.TokenToId("hello"), Is.EqualTo(7592));
            Assert.That(t.TokenToId("no-such-token"), Is.Null);
            Assert.That(t.IdToToken(101), Is.EqualTo("[CLS]"));
            Assert.That(t.IdToToken(7592), Is.EqualTo("hello"));
            Assert.That(t.IdToToken(30522), Is.Null);
            Assert.That(t.IdToToken(-1), Is.Null);
        });
    }

    [Test]
    public void Ill_formed_and_unusual_input_does_not_throw()
    {
        var t = Tokenizer("bert-base-uncased");
        Assert.Multiple(() =>
        {
            // A lone surrogate reads as U+FFFD (which BertNormalizer drops), as when the text is sent to Rust as UTF-8.
            Assert.That(t.Encode("a\uD800b"), Is.EqualTo(t.Encode("a\uFFFDb")));
            Assert.That(t.Encode("x\uDC00"), Is.EqualTo(t.Encode("x")));
            // U+FFFE: .NET's Unicode normalization rejects it, Rust does not (ids from Hugging Face tokenizers 0.22.2).
            Assert.That(t.Encode("caf\u00E9 \uFFFE x"), Is.EqualTo(new[] { 101, 7668, 100, 1060, 102 }));
            Assert.That(() => t.Encode(null!), Throws.ArgumentNullException);
        });
    }

    [TestCase("answerai-colbert-small-v1")]
    [TestCase("modernbert")]
    [TestCase("qwen3")]
    public void Encoding_is_thread_safe(string fixture)
    {
        var cases = GoldenCase.Load(fixture);
        // A fresh tokenizer, so that the threads also race on filling the BPE word cache.
        var t = TokenizerLoader.FromFolder(GoldenCase.Folder(fixture))!;
        Assert.That(GoldenCase.ParallelMismatches(t, cases, repeats: 8, threads: 8), Is.Empty);
    }

    internal static TextTokenizer Tokenizer(string fixture) =>
        Tokenizers.GetOrAdd(fixture, f => TokenizerLoader.FromFolder(GoldenCase.Folder(f))
            ?? throw new AssertionException($"no tokenizer found in {GoldenCase.Folder(f)}"));
}
