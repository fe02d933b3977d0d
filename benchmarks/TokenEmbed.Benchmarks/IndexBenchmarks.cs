using BenchmarkDotNet.Attributes;
using TokenEmbed.Retrieval;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// One query against a <see cref="PlantedCorpus"/> of 128-dim vectors (16–48 a document, 32-vector queries): exact
/// search (the baseline, every document scored) against the PLAID-style candidate stage on the same index. The index is
/// built and its centroids trained in the setup; <c>-- index</c> reports build times and recall.
/// </summary>
public class IndexSearchBenchmarks
{
    private MultiVectorIndex _index = null!;
    private PoolingOutput[] _queries = null!;
    private int _next;

    /// <summary>Documents in the index.</summary>
    [Params(10_000)]
    public int Documents { get; set; }

    /// <summary>How the vectors are stored.</summary>
    [Params(VectorPrecision.Float32, VectorPrecision.Float16)]
    public VectorPrecision Precision { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var corpus = PlantedCorpus.Create(Documents, 20, 128, seed: 42);
        _index = new MultiVectorIndex(128, new MultiVectorIndexOptions { Precision = Precision, Plaid = new PlaidOptions() });
        foreach (var (id, v) in corpus.Documents) _index.Add(id, new PoolingOutput(v, [v.Length / 128, 128]));
        _queries = corpus.Queries.Select(q => new PoolingOutput(q, [32, 128])).ToArray();
        _index.Search(_queries[0], 10);
    }

    [GlobalCleanup]
    public void Cleanup() => _index.Dispose();

    [Benchmark(Baseline = true, Description = "exact (every document)")]
    public int Exact() => _index.SearchExact(_queries[_next++ % _queries.Length], 10).Count;

    [Benchmark(Description = "PLAID candidate stage")]
    public int Plaid() => _index.Search(_queries[_next++ % _queries.Length], 10).Count;
}

/// <summary>PyLate's token pooling (Ward linkage, scipy's algorithm) of one 180-token, 128-dim document.</summary>
public class TokenPoolingBenchmarks
{
    private PoolingOutput _document = null!;

    /// <summary>PyLate's pool factor.</summary>
    [Params(2, 3)]
    public int PoolFactor { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var corpus = PlantedCorpus.Create(1, 0, 128, seed: 3, minTokens: 180, maxTokens: 180);
        _document = new PoolingOutput(corpus.Documents[0].Vectors, [180, 128]);
    }

    [Benchmark(Description = "pool one 180 x 128 document")]
    public int Pool() => LateInteraction.PoolTokens(_document, PoolFactor).Shape[0];
}
