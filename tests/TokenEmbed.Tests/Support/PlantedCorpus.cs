namespace TokenEmbed.Tests.Support;

/// <summary>
/// A synthetic multi-vector corpus whose nearest documents are known: random unit token vectors, and for each query
/// <see cref="PlantedPerQuery"/> planted documents holding noisy copies of some of its vectors (the r-th holds fewer copies
/// than the (r−1)-th), so that the exact top ten of a query are its planted documents, best first. Shared by the index
/// tests and the index benchmarks (linked into the benchmark project).
/// </summary>
internal sealed class PlantedCorpus
{
    public const int PlantedPerQuery = 10;

    private PlantedCorpus(int dimension) => Dimension = dimension;

    /// <summary>The vector size.</summary>
    public int Dimension { get; }

    /// <summary>The documents: id and row-major unit vectors.</summary>
    public List<(string Id, float[] Vectors)> Documents { get; } = [];

    /// <summary>The queries' row-major unit vectors.</summary>
    public List<float[]> Queries { get; } = [];

    /// <summary>Per query, its planted documents' ids, most similar first.</summary>
    public List<string[]> Planted { get; } = [];

    public static PlantedCorpus Create(int documents, int queries, int dimension, int seed, int queryTokens = 32, int minTokens = 16, int maxTokens = 48)
    {
        var rng = new Random(seed);
        var corpus = new PlantedCorpus(dimension);
        float[] Units(int rows)
        {
            var v = new float[rows * dimension];
            for (var i = 0; i < v.Length; i++) v[i] = rng.NextSingle() * 2 - 1;
            Normalize(v, dimension);
            return v;
        }
        var plantedTotal = Math.Min(queries * PlantedPerQuery, documents);
        for (var d = 0; d < documents - plantedTotal; d++) corpus.Documents.Add(($"doc{d}", Units(rng.Next(minTokens, maxTokens + 1))));
        for (var q = 0; q < queries; q++)
        {
            var query = Units(queryTokens);
            corpus.Queries.Add(query);
            var ids = new List<string>();
            for (var r = 0; r < PlantedPerQuery && corpus.Documents.Count < documents; r++)
            {
                var tokens = rng.Next(minTokens, maxTokens + 1);
                var v = Units(tokens);
                // Rank r copies (with noise of norm ~0.3) max(queryTokens / 3, queryTokens − 2r) of the query's vectors.
                var copies = Math.Min(tokens, Math.Max(queryTokens / 3, queryTokens - 2 * r));
                var which = Enumerable.Range(0, queryTokens).OrderBy(_ => rng.Next()).Take(copies).ToArray();
                for (var t = 0; t < copies; t++)
                    for (var k = 0; k < dimension; k++)
                        v[t * dimension + k] = query[which[t] * dimension + k] + 0.3f * (rng.NextSingle() * 2 - 1) * MathF.Sqrt(3f / dimension);
                Normalize(v, dimension);
                var id = $"q{q}-planted{r}";
                ids.Add(id);
                corpus.Documents.Insert(rng.Next(corpus.Documents.Count + 1), (id, v));
            }
            corpus.Planted.Add([.. ids]);
        }
        return corpus;
    }

    private static void Normalize(float[] v, int dim)
    {
        for (var r = 0; r < v.Length / dim; r++)
        {
            var row = v.AsSpan(r * dim, dim);
            var norm = 0.0;
            foreach (var x in row) norm += x * x;
            var s = (float)(1 / Math.Sqrt(norm));
            for (var k = 0; k < dim; k++) row[k] *= s;
        }
    }
}
