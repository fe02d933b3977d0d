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

    [Test]
    public void AddRemoveSaveLoadRoundTrip()
    {
        var (index, docs) = Build(50);
        Assert.That(index.Remove("doc7"), Is.True);
        Assert.That(index.Remove("doc7"), Is.False);
        docs.Remove("doc7");
        Assert.That(() => index.Add("doc8", Vectors(1, 3)), Throws.ArgumentException.With.Message.Contains("doc8"));
        Assert.That(() => index.Add("x", new PoolingOutput(new float[3 * 8], [3, 8])), Throws.ArgumentException, "wrong dim");
        Assert.That(() => index.Add("x", new PoolingOutput([float.NaN, .. new float[Dim - 1]], [1, Dim])), Throws.ArgumentException, "NaN");
        Assert.That(index.Count, Is.EqualTo(49));
        using var f = new TempFolder();
        index.Save(f.File("index.bin"));
        var loaded = MultiVectorIndex.Load(f.File("index.bin"));
        Assert.That((loaded.Count, loaded.Dimension), Is.EqualTo((49, Dim)));
        var q = Vectors(77, 5);
        Assert.That(loaded.Search(q, 7), Is.EqualTo(index.Search(q, 7)));
        Assert.That(loaded.Search(q, 49).Select(h => h.Id), Is.EqualTo(BruteForce(docs, q, 49)));
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
        Expect(bytes[..(bytes.Length - 3)], "");
        Expect(bytes[..40], "more than the file holds");
        Expect(bytes[..10], "truncated");
        var wrongMagic = (byte[])bytes.Clone();
        wrongMagic[0] = (byte)'X';
        Expect(wrongMagic, "signature");
        var hugeCount = (byte[])bytes.Clone();
        BitConverter.GetBytes(int.MaxValue).CopyTo(hugeCount, 12);
        Expect(hugeCount, "");
        Expect([.. bytes, 1, 2, 3], "trailing");
    }

    /// <summary>Documents encoded as PyLate documents, a query as a PyLate query: Search ranks as Score does.</summary>
    [Test]
    public void ThroughAnLlmSearchRanksAsScore()
    {
        var mini = TestPaths.MiniLm;
        using var folder = new TempFolder().CopyFrom(mini, Checkpoints.TokenizerFiles);
        Checkpoints.WriteConfig(mini, folder.Path, "HF_ColBERT");
        var tensors = Checkpoints.ReadAll(mini);
        tensors["linear.weight"] = ([32, 384], Reference.Gaussian(32 * 384, 4, 0.05));
        SafeTensorsWriter.WriteF32(folder.File("model.safetensors"), tensors);
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
}
