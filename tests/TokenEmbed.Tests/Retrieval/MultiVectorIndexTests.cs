using NUnit.Framework;
using TokenEmbed.Retrieval;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Retrieval;

/// <summary>The exact multi-vector index: brute-force MaxSim ranking, add/remove, save/load, corrupt files.</summary>
public sealed class MultiVectorIndexTests
{
    private const int Dim = 16;

    private static PoolingOutput Vectors(int seed, int tokens)
    {
        var data = Reference.Normalize(Reference.Gaussian(tokens * Dim, seed, 1.0), Dim);
        return new PoolingOutput(data, [tokens, Dim]);
    }

    private static (MultiVectorIndex Index, Dictionary<string, PoolingOutput> Docs) Build(int count)
    {
        var index = new MultiVectorIndex(Dim);
        var docs = new Dictionary<string, PoolingOutput>();
        for (var i = 0; i < count; i++)
        {
            var v = Vectors(100 + i, 3 + i % 17);
            docs[$"doc{i}"] = v;
            index.Add($"doc{i}", v);
        }
        return (index, docs);
    }

    /// <summary>Brute force in double precision (the test's own MaxSim), ties by id.</summary>
    private static string[] BruteForce(Dictionary<string, PoolingOutput> docs, PoolingOutput q, int k) =>
        docs.Select(d => (d.Key, Score: Reference.MaxSim(q.Data, d.Value.Data, Dim)))
            .OrderByDescending(x => x.Score).ThenBy(x => x.Key, StringComparer.Ordinal).Take(k).Select(x => x.Key).ToArray();

    [Test]
    public void SearchEqualsBruteForceMaxSimRanking()
    {
        var (index, docs) = Build(500);
        for (var qi = 0; qi < 5; qi++)
        {
            var q = Vectors(9000 + qi, 8);
            var hits = index.Search(q, 10);
            Assert.That(hits.Select(h => h.Id), Is.EqualTo(BruteForce(docs, q, 10)), $"query {qi}");
            foreach (var h in hits) Assert.That(h.Score, Is.EqualTo(Reference.MaxSim(q.Data, docs[h.Id].Data, Dim)).Within(1e-4));
        }
        Assert.That(index.Search(Vectors(1, 2), 1000), Has.Count.EqualTo(500), "k above Count returns every document");
    }

    [TestCase(VectorPrecision.Float32)]
    [TestCase(VectorPrecision.Float16)]
    public void AddRemoveSaveLoadRoundTrip(VectorPrecision precision)
    {
        var index = new MultiVectorIndex(Dim, new MultiVectorIndexOptions { Precision = precision });
        var docs = new Dictionary<string, PoolingOutput>();
        for (var i = 0; i < 50; i++)
        {
            var v = Vectors(100 + i, 3 + i % 17);
            index.Add($"doc{i}", v);
            docs[$"doc{i}"] = precision == VectorPrecision.Float16 ? Rounded(v) : v;
        }
        Assert.That(index.Remove("doc7"), Is.True);
        Assert.That(index.Remove("doc7"), Is.False);
        docs.Remove("doc7");
        Assert.That(() => index.Add("doc8", Vectors(1, 3)), Throws.ArgumentException.With.Message.Contains("doc8"));
        Assert.That(() => index.Add("x", new PoolingOutput(new float[3 * 8], [3, 8])), Throws.ArgumentException.With.Message.Contains("16"), "wrong dim");
        Assert.That(() => index.Add("x", new PoolingOutput([float.NaN, .. new float[Dim - 1]], [1, Dim])), Throws.ArgumentException, "NaN");
        if (precision == VectorPrecision.Float16)
            Assert.That(() => index.Add("x", new PoolingOutput([70000f, .. new float[Dim - 1]], [1, Dim])), Throws.ArgumentException.With.Message.Contains("65504"));
        Assert.That(index.Count, Is.EqualTo(49));
        using var f = new TempFolder();
        index.Save(f.File("index.bin"));
        var q = Vectors(77, 5);
        using (var loaded = MultiVectorIndex.Load(f.File("index.bin")))
        {
            Assert.That((loaded.Count, loaded.Dimension, loaded.Precision), Is.EqualTo((49, Dim, precision)));
            Assert.That(loaded.Search(q, 7), Is.EqualTo(index.Search(q, 7)), "the mapped file gives the same hits and scores");
            Assert.That(loaded.Search(q, 49).Select(h => h.Id), Is.EqualTo(BruteForce(docs, q, 49)));
            // A loaded index takes adds and removes (kept in memory) and saves them: here over its own file, while mapped.
            loaded.Add("new", Vectors(5000, 4));
            docs["new"] = precision == VectorPrecision.Float16 ? Rounded(Vectors(5000, 4)) : Vectors(5000, 4);
            Assert.That(loaded.Remove("doc3"), Is.True);
            docs.Remove("doc3");
            loaded.Save(f.File("index.bin"));
            Assert.That(loaded.Search(q, 49).Select(h => h.Id), Is.EqualTo(BruteForce(docs, q, 49)));
        }
        using var again = MultiVectorIndex.Load(f.File("index.bin"));
        Assert.That(again.Count, Is.EqualTo(49));
        Assert.That(again.Search(q, 49).Select(h => h.Id), Is.EqualTo(BruteForce(docs, q, 49)));
        again.Dispose();
        Assert.That(() => again.Search(q, 1), Throws.InstanceOf<ObjectDisposedException>());
        var bytes = new FileInfo(f.File("index.bin")).Length;
        TestContext.Out.WriteLine($"{precision}: {bytes} bytes for {docs.Sum(d => d.Value.Shape[0])} vectors of {Dim}");
    }

    /// <summary>The values float16 storage keeps.</summary>
    private static PoolingOutput Rounded(PoolingOutput v) => new(v.Data.Select(x => (float)(Half)x).ToArray(), v.Shape);

    [Test]
    public void Float16SearchEqualsBruteForceOnTheRoundedVectors()
    {
        var index = new MultiVectorIndex(Dim, new MultiVectorIndexOptions { Precision = VectorPrecision.Float16 });
        var docs = new Dictionary<string, PoolingOutput>();
        for (var i = 0; i < 300; i++)
        {
            var v = Vectors(300 + i, 2 + i % 23);
            index.Add($"d{i}", v);
            docs[$"d{i}"] = Rounded(v);
        }
        var q = Vectors(4242, 9);
        var hits = index.Search(q, 20);
        Assert.That(hits.Select(h => h.Id), Is.EqualTo(BruteForce(docs, q, 20)));
        foreach (var h in hits) Assert.That(h.Score, Is.EqualTo(Reference.MaxSim(q.Data, docs[h.Id].Data, Dim)).Within(1e-4));
    }

    [Test]
    public void HalfToSingleIsExactForEveryFiniteHalf()
    {
        var all = Enumerable.Range(0, 65536).Select(b => BitConverter.UInt16BitsToHalf((ushort)b)).Where(Half.IsFinite).ToArray();
        var converted = new float[all.Length];
        TokenEmbed.Scoring.MaxSim.ToSingle(all, converted);
        var wrong = Enumerable.Range(0, all.Length).Count(i => BitConverter.SingleToInt32Bits(converted[i]) != BitConverter.SingleToInt32Bits((float)all[i]));
        Assert.That(wrong, Is.Zero, $"of {all.Length} finite halves (subnormals and -0 included)");
    }

    [Test]
    public void CorruptOrTruncatedFilesAreClearErrors()
    {
        var (index, _) = Build(5);
        using var f = new TempFolder();
        index.Save(f.File("index.bin"));
        var bytes = File.ReadAllBytes(f.File("index.bin"));
        void Expect(byte[] content, string words)
        {
            File.WriteAllBytes(f.File("bad.bin"), content);
            Assert.That(() => MultiVectorIndex.Load(f.File("bad.bin")),
                Throws.InstanceOf<InvalidDataException>().With.Message.Contains("bad.bin").And.Message.Contains(words));
        }
        byte[] Flipped(int at)
        {
            var copy = (byte[])bytes.Clone();
            copy[at] ^= 0x40;
            return copy;
        }
        Expect([], "truncated");
        Expect(bytes[..10], "truncated");
        Expect(bytes[..200], "bounds");
        Expect(bytes[..(bytes.Length - 3)], "bounds");
        Expect([.. bytes, 1, 2, 3], "bounds");
        Expect(Flipped(0), "signature");
        Expect(Flipped(20), "");                          // the document count: bounds or checksum
        Expect(Flipped(130), "checksum");                 // inside the directory
        Expect(Flipped(bytes.Length - 20), "checksum");   // inside the vectors
        Expect(Flipped(bytes.Length - 2), "end signature");
        var v1 = (byte[])bytes.Clone();
        "TEMVIDX1"u8.ToArray().CopyTo(v1, 0);
        Expect(v1, "version-1");
    }

    /// <summary>all-MiniLM-L6-v2 in HF_ColBERT layout with a seeded 384 → 32 head.</summary>
    private static TempFolder ColBertMiniLm()
    {
        var mini = TestPaths.MiniLm;
        var folder = new TempFolder().CopyFrom(mini, Checkpoints.TokenizerFiles);
        Checkpoints.WriteConfig(mini, folder.Path, "HF_ColBERT");
        var tensors = Checkpoints.ReadAll(mini);
        tensors["linear.weight"] = ([32, 384], Reference.Gaussian(32 * 384, 4, 0.05));
        SafeTensorsWriter.WriteF32(folder.File("model.safetensors"), tensors);
        return folder;
    }

    /// <summary>Documents encoded as PyLate documents, a query as a PyLate query: Search ranks as Score does.</summary>
    [Test]
    public void ThroughAnLlmSearchRanksAsScore()
    {
        using var folder = ColBertMiniLm();
        using var llm = new Llm(folder.Path, new LlmOptions { Device = "cpu" });
        string[] docs = ["ColBERT keeps one vector per token.", "Paris is the capital of France.", "Bread needs flour and water.", "Late interaction scores with MaxSim."];
        var index = new MultiVectorIndex(llm.Dimension);
        var encoded = llm.Encode(docs, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document });
        for (var i = 0; i < docs.Length; i++) index.Add(docs[i], encoded[i].Outputs);
        const string query = "how does late interaction score documents?";
        var q = llm.Encode(query, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0].Outputs;
        var hits = index.Search(q, 4);
        var scores = llm.Score(query, docs, new PoolingParams { InputType = InputType.Query });
        var byScore = docs.Zip(scores, (d, s) => (d, s.Outputs.Score)).OrderByDescending(x => x.Score).Select(x => x.d);
        Assert.That(hits.Select(h => h.Id), Is.EqualTo(byScore));
    }

    private static PoolingOutput Rows(float[] v, int dim) => new(v, [v.Length / dim, dim]);

    [Test]
    public void PlaidFindsThePlantedNeighboursAndKeepsItsCentroidsThroughSaveAndLoad()
    {
        const int dim = 64;
        var corpus = PlantedCorpus.Create(documents: 3000, queries: 20, dimension: dim, seed: 7, queryTokens: 16, minTokens: 8, maxTokens: 24);
        var plaid = new PlaidOptions { Centroids = 512, Probes = 4, Candidates = 64 };
        using var index = new MultiVectorIndex(dim, new MultiVectorIndexOptions { Plaid = plaid });
        foreach (var (id, v) in corpus.Documents) index.Add(id, Rows(v, dim));
        Assert.That(index.HasCandidateStage, Is.False, "centroids are trained on the first search");
        var found = 0;
        for (var q = 0; q < corpus.Queries.Count; q++)
        {
            var query = Rows(corpus.Queries[q], dim);
            var exact = index.SearchExact(query, 10);
            Assert.That(exact.Select(h => h.Id), Is.EquivalentTo(corpus.Planted[q]), $"query {q}: the planted documents are the exact top 10");
            var fast = index.Search(query, 10);
            found += fast.Select(h => h.Id).Intersect(exact.Select(h => h.Id)).Count();
            foreach (var h in fast) Assert.That(h.Score, Is.EqualTo(exact.FirstOrDefault(e => e.Id == h.Id)?.Score ?? h.Score), "candidates are re-ranked exactly");
        }
        var recall = found / (10.0 * corpus.Queries.Count);
        TestContext.Out.WriteLine($"PLAID recall@10 vs exact: {recall:F3} (3000 documents, 512 centroids, 4 probes, 64 candidates)");
        Assert.That(index.HasCandidateStage, Is.True);
        Assert.That(recall, Is.GreaterThanOrEqualTo(0.95));

        // A document added after training is assigned to the centroids and found.
        var twin = Rows(corpus.Queries[0].ToArray(), dim);
        index.Add("late", twin);
        Assert.That(index.Search(Rows(corpus.Queries[0], dim), 1)[0].Id, Is.EqualTo("late"));

        using var f = new TempFolder();
        index.Save(f.File("plaid.bin"));
        using var loaded = MultiVectorIndex.Load(f.File("plaid.bin"));
        Assert.That(loaded.HasCandidateStage, Is.True, "the centroids are saved");
        for (var q = 0; q < 5; q++)
        {
            var query = Rows(corpus.Queries[q], dim);
            Assert.That(loaded.Search(query, 10), Is.EqualTo(index.Search(query, 10)), $"query {q}: the loaded index searches alike");
        }
        using var exactOnly = MultiVectorIndex.Load(f.File("plaid.bin"), new MultiVectorIndexOptions());
        Assert.That(exactOnly.Search(Rows(corpus.Queries[3], dim), 10), Is.EqualTo(index.SearchExact(Rows(corpus.Queries[3], dim), 10)));
    }

    [Test]
    public void PlaidWithEveryDocumentAsACandidateIsExact()
    {
        var (exact, _) = Build(400);
        using var plaid = new MultiVectorIndex(Dim, new MultiVectorIndexOptions { Plaid = new PlaidOptions { Centroids = 16, Probes = 16, Candidates = 400 } });
        for (var i = 0; i < 400; i++) plaid.Add($"doc{i}", Vectors(100 + i, 3 + i % 17));
        for (var q = 0; q < 3; q++)
            Assert.That(plaid.Search(Vectors(600 + q, 6), 25), Is.EqualTo(exact.Search(Vectors(600 + q, 6), 25)));
        Assert.That(() => new MultiVectorIndex(Dim, new MultiVectorIndexOptions { Plaid = new PlaidOptions { Probes = 0 } }), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public async Task TextsAddAndSearchThroughAnLlm()
    {
        using var folder = ColBertMiniLm();
        using var llm = new Llm(folder.Path, new LlmOptions { Device = "cpu" });
        string[] docs = ["ColBERT keeps one vector per token.", "Paris is the capital of France.", "Late interaction scores with MaxSim."];
        using var index = new MultiVectorIndex(llm.Dimension);
        await index.AddAsync(llm, ["a", "b", "c"], docs, new PoolingParams { PoolFactor = 2 });
        var pooled = llm.Encode(docs[0], PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document, PoolFactor = 2 })[0].Outputs;
        const string query = "what scores with MaxSim?";
        var q = llm.Encode(query, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0].Outputs;
        var hits = await index.SearchAsync(llm, query, 3);
        Assert.That(hits.Single(h => h.Id == "a").Score, Is.EqualTo(Reference.MaxSim(q.Data, pooled.Data, llm.Dimension)).Within(1e-4),
            "documents are encoded as pooled PyLate documents, the query as a PyLate query");
        Assert.That(() => index.Add(llm, ["d"], ["x", "y"]), Throws.ArgumentException);
        Assert.That(() => index.Add(llm, ["a"], ["x"]), Throws.ArgumentException.With.Message.Contains("'a'"));
    }
}
