using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using TokenEmbed.Retrieval;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// <c>-- index [documents,…] [queries]</c>: the multi-vector index on synthetic corpora with planted neighbours
/// (<see cref="PlantedCorpus"/>: 128-dim unit vectors, 16–48 per document, 32-vector queries, ten planted neighbours a
/// query, so that the exact top ten is known) and on a real small corpus (this repository's documentation, chunked, encoded
/// by all-MiniLM-L6-v2 in HF_ColBERT layout): build time, PLAID training time, exact and PLAID queries/s (queries one after
/// another, each search using every core), recall@10 of PLAID against exact, file size, save and load time. Exact and
/// PLAID run on the same index, interleaved query by query.
/// </summary>
internal static class IndexRun
{
    public static int Run(string[] args)
    {
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        var sizes = args.Length > 1 ? args[1].Split(',').Select(s => int.Parse(s, CultureInfo.InvariantCulture)).ToArray() : [10_000, 100_000];
        var queries = args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 50;
        Pooling();
        foreach (var n in sizes) Synthetic(n, queries);
        RealCorpus();
        return 0;
    }

    /// <summary>Token pooling speed (documents/s, one thread) and size for 180-token, 128-dim documents.</summary>
    private static void Pooling()
    {
        var corpus = PlantedCorpus.Create(200, 0, 128, seed: 3, minTokens: 180, maxTokens: 180);
        var docs = corpus.Documents.Select(d => new PoolingOutput(d.Vectors, [180, 128])).ToArray();
        foreach (var factor in new[] { 2, 3, 4 })
        {
            for (var w = 0; w < 5; w++) LateInteraction.PoolTokens(docs[w], factor);
            var clock = Stopwatch.StartNew();
            long kept = 0;
            foreach (var d in docs) kept += LateInteraction.PoolTokens(d, factor).Shape[0];
            var distinct = clock.Elapsed.TotalSeconds;
            clock.Restart();
            for (var r = 0; r < 64; r++) LateInteraction.PoolTokens(docs[0], factor);
            var same = clock.Elapsed.TotalMilliseconds / 64;
            Console.WriteLine($"token pooling, pool factor {factor}: {docs.Length / distinct:F0} documents/s (180 x 128, one thread; one document 64 times: {same:F1} ms each), " +
                              $"{180.0 * docs.Length / kept:F2}x fewer vectors ({kept / (double)docs.Length:F1} of 180)");
        }
    }

    private static void Synthetic(int documents, int queries)
    {
        const int dim = 128;
        var clock = Stopwatch.StartNew();
        var corpus = PlantedCorpus.Create(documents, queries, dim, seed: 42, queryTokens: 32, minTokens: 16, maxTokens: 48);
        var vectors = corpus.Documents.Sum(d => (long)d.Vectors.Length / dim);
        Console.WriteLine($"\n== {documents} synthetic documents, {vectors} vectors of {dim} (generated in {clock.Elapsed.TotalSeconds:F1} s)");
        foreach (var precision in new[] { VectorPrecision.Float32, VectorPrecision.Float16 })
        {
            using var index = new MultiVectorIndex(dim, new MultiVectorIndexOptions { Precision = precision, Plaid = new PlaidOptions() });
            clock.Restart();
            foreach (var (id, v) in corpus.Documents) index.Add(id, new PoolingOutput(v, [v.Length / dim, dim]));
            var add = clock.Elapsed.TotalSeconds;
            Measure($"{precision}", index, corpus.Queries.Select(q => new PoolingOutput(q, [q.Length / dim, dim])).ToArray(), add,
                corpus.Planted);
        }
    }

    private static void Measure(string label, MultiVectorIndex index, PoolingOutput[] queries, double addSeconds, List<string[]>? planted)
    {
        var clock = Stopwatch.StartNew();
        index.Search(queries[0], 10);   // trains the centroids
        var train = clock.Elapsed.TotalSeconds;
        for (var w = 0; w < Math.Min(3, queries.Length); w++)
        {
            index.Search(queries[w], 10);
            index.SearchExact(queries[w], 10);
        }
        double exactSeconds = 0, plaidSeconds = 0;
        var found = 0;
        var plantedFound = 0;
        var exactRuns = 0;
        for (var q = 0; q < queries.Length; q++)
        {
            clock.Restart();
            var fast = index.Search(queries[q], 10);
            plaidSeconds += clock.Elapsed.TotalSeconds;
            clock.Restart();
            var exact = index.SearchExact(queries[q], 10);
            exactSeconds += clock.Elapsed.TotalSeconds;
            exactRuns++;
            found += fast.Select(h => h.Id).Intersect(exact.Select(h => h.Id)).Count();
            if (planted != null) plantedFound += exact.Select(h => h.Id).Intersect(planted[q]).Count();
        }
        var exactQps = exactRuns / exactSeconds;
        var plaidQps = queries.Length / plaidSeconds;
        var path = Path.Combine(Path.GetTempPath(), $"tokenembed-index-{Environment.ProcessId}.bin");
        clock.Restart();
        index.Save(path);
        var save = clock.Elapsed.TotalSeconds;
        var size = new FileInfo(path).Length;
        clock.Restart();
        using (var loaded = MultiVectorIndex.Load(path)) { }
        var load = clock.Elapsed.TotalSeconds;
        File.Delete(path);
        Console.WriteLine(
            $"{label,-8} add {addSeconds:F1} s, PLAID training {train:F1} s; exact {exactQps:F2} q/s, PLAID {plaidQps:F1} q/s ({plaidQps / exactQps:F0}x); " +
            $"recall@10 PLAID vs exact {found / (10.0 * queries.Length):F3}" +
            (planted != null ? $" (planted neighbours in the exact top 10: {plantedFound / (10.0 * queries.Length):F3})" : "") +
            $"; file {size / 1e6:F1} MB, save {save:F1} s, load {load:F2} s");
    }

    /// <summary>This repository's Markdown (and ../shared's, when present), as overlapping 40-word passages; queries are 8-word spans.</summary>
    private static void RealCorpus()
    {
        var root = ModelPaths.RepositoryRoot;
        var files = Directory.EnumerateFiles(root, "*.md", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}") && !f.Contains("BenchmarkDotNet.Artifacts"))
            .Concat(Directory.Exists(Path.Combine(root, "..", "shared")) ? Directory.EnumerateFiles(Path.Combine(root, "..", "shared"), "*.md", SearchOption.AllDirectories) : [])
            .Order(StringComparer.Ordinal).ToArray();
        var words = files.SelectMany(f => Regex.Split(File.ReadAllText(f), @"\s+")).Where(w => w.Length > 0).ToArray();
        var passages = new List<string>();
        for (var start = 0; start + 40 <= words.Length; start += 10) passages.Add(string.Join(' ', words, start, 40));
        var rng = new Random(5);
        var queryTexts = Enumerable.Range(0, 50).Select(_ => string.Join(' ', words, rng.Next(words.Length - 8), 8)).ToArray();

        var folder = Path.Combine(Path.GetTempPath(), $"tokenembed-colbert-minilm-{Environment.ProcessId}");
        Directory.CreateDirectory(folder);
        try
        {
            var mini = ModelPaths.MiniLm;
            foreach (var name in Checkpoints.TokenizerFiles.Where(n => File.Exists(Path.Combine(mini, n))))
                File.Copy(Path.Combine(mini, name), Path.Combine(folder, name));
            Checkpoints.WriteConfig(mini, folder, "HF_ColBERT");
            var tensors = Checkpoints.ReadAll(mini);
            var g = new Random(9);
            tensors["linear.weight"] = ([128, 384], Enumerable.Range(0, 128 * 384).Select(_ => (float)((g.NextDouble() * 2 - 1) * 0.09)).ToArray());
            SafeTensorsWriter.WriteF32(Path.Combine(folder, "model.safetensors"), tensors);
            using var llm = new Llm(folder, new LlmOptions { Device = "cpu" });
            var clock = Stopwatch.StartNew();
            var ids = passages.Select((_, i) => $"p{i}").ToArray();
            using var index = new MultiVectorIndex(llm.Dimension, new MultiVectorIndexOptions { Plaid = new PlaidOptions() });
            index.Add(llm, ids, passages);
            var encodeAndAdd = clock.Elapsed.TotalSeconds;
            var q = llm.Encode(queryTexts, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query }).Select(o => o.Outputs).ToArray();
            Console.WriteLine($"\n== real corpus: {passages.Count} passages of 40 words from {files.Length} Markdown files, all-MiniLM-L6-v2 as HF_ColBERT " +
                              $"(random 384→128 head), PyLate document / query encoding; encode + add {encodeAndAdd:F1} s");
            Measure("Float32", index, q, encodeAndAdd, null);
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }
}
