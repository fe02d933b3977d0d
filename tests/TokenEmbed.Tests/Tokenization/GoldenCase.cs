using System.Text.Json;
using TokenEmbed.Tests.Support;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Tests.Tokenization;

/// <summary>One case of a fixture's goldens.json (Hugging Face tokenizers' output).</summary>
internal sealed record GoldenCase(string Fixture, string Name, string Text, int[] Ids, int[] IdsNoSpecial)
{
    /// <summary>The tokenizer fixtures whose goldens the WordPiece tokenizer must reproduce.</summary>
    public static readonly string[] WordPieceFixtures = ["bert-base-uncased", "answerai-colbert-small-v1"];

    /// <summary>The byte-level BPE tokenizer fixtures (ModernBERT: ByteLevel + template; Qwen3: Split + ByteLevel, no template).</summary>
    public static readonly string[] BpeFixtures = ["modernbert", "qwen3"];

    /// <summary>The fixture folder, e.g. Fixtures/tokenizers/bert-base-uncased.</summary>
    public static string Folder(string fixture) => TestPaths.Fixture("tokenizers", fixture);

    /// <summary>Reads the cases of a fixture's goldens.json.</summary>
    public static IReadOnlyList<GoldenCase> Load(string fixture) => Load(fixture, "goldens.json");

    /// <summary>Reads the cases of one goldens file of a fixture.</summary>
    public static IReadOnlyList<GoldenCase> Load(string fixture, string goldensFile)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder(fixture), goldensFile)));
        var cases = new List<GoldenCase>();
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            cases.Add(new GoldenCase(
                fixture,
                c.GetProperty("name").GetString()!,
                c.GetProperty("text").GetString()!,
                c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                c.GetProperty("ids_no_special").EnumerateArray().Select(x => x.GetInt32()).ToArray()));
        }
        return cases;
    }

    /// <summary>
    /// Encodes every case <paramref name="repeats"/> times from several threads at once; returns the names of the
    /// cases whose ids (with special tokens) differed from the golden.
    /// </summary>
    public static IReadOnlyCollection<string> ParallelMismatches(TextTokenizer tokenizer, IReadOnlyList<GoldenCase> cases, int repeats, int threads)
    {
        var failures = new System.Collections.Concurrent.ConcurrentBag<string>();
        Parallel.For(0, repeats * cases.Count, new ParallelOptions { MaxDegreeOfParallelism = threads }, i =>
        {
            var c = cases[i % cases.Count];
            if (!tokenizer.Encode(c.Text).SequenceEqual(c.Ids)) failures.Add(c.Name);
        });
        return failures;
    }

    public override string ToString() => $"{Fixture}/{Name}";
}
