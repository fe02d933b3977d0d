using System.Text.Json;
using BenchmarkDotNet.Attributes;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// Tokenization of the 30 all-MiniLM-L6-v2 reference texts (short to ~600 tokens) with TokenEmbed's tokenizer.json
/// pipeline against Hugging Face <c>tokenizers</c> (Rust, through Tokenizers.DotNet) loading the same file.
/// </summary>
[MemoryDiagnoser]
public class TokenizerBenchmarks
{
    private string[] _texts = null!;
    private TextTokenizer _ours = null!;
    private Tokenizers.DotNet.Tokenizer _hf = null!;

    [GlobalSetup]
    public void Setup()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(ModelPaths.MiniLm, "texts.json")));
        _texts = doc.RootElement.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToArray();
        _ours = TokenizerLoader.FromFolder(ModelPaths.MiniLm) ?? throw new InvalidOperationException("no tokenizer");
        _hf = new Tokenizers.DotNet.Tokenizer(vocabPath: Path.Combine(ModelPaths.MiniLm, "tokenizer.json"));
        for (var i = 0; i < _texts.Length; i++)
            if (!_ours.Encode(_texts[i]).SequenceEqual(_hf.Encode(_texts[i]).Select(x => (int)x)))
                throw new InvalidOperationException($"text {i}: the two tokenizers disagree");
    }

    [GlobalCleanup]
    public void Cleanup() => _hf.Dispose();

    [Benchmark(Baseline = true, Description = "HF tokenizers (Rust)")]
    public int HuggingFaceRust()
    {
        var n = 0;
        foreach (var t in _texts) n += _hf.Encode(t).Length;
        return n;
    }

    [Benchmark(Description = "TokenEmbed")]
    public int TokenEmbed()
    {
        var n = 0;
        foreach (var t in _texts) n += _ours.Encode(t).Length;
        return n;
    }
}
