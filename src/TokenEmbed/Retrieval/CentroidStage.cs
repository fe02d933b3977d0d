using System.Numerics;
using Microsoft.Extensions.Logging.Abstractions;
using TokenEmbed.Models.Layers;
using TokenEmbed.Runtime;
using TokenEmbed.Scoring;
using static TorchSharp.torch;

namespace TokenEmbed.Retrieval;

/// <summary>
/// The PLAID-style candidate stage of a <see cref="MultiVectorIndex"/>: normalized centroids (spherical k-means, products on
/// libtorch with the CPU matmul path the library chose), the inverted lists centroid → documents, and the candidate search
/// (probe, centroid interaction, best candidates). Documents are numbered by the index; a document's unique centroids are
/// kept by the index and handed in.
/// </summary>
internal sealed class CentroidStage
{
    private readonly List<int>[] _lists;

    public CentroidStage(float[] centroids, int count, int dimension, long trainedTokens)
    {
        Centroids = centroids;
        Count = count;
        Dimension = dimension;
        TrainedTokens = trainedTokens;
        _lists = Enumerable.Range(0, count).Select(_ => new List<int>()).ToArray();
    }

    /// <summary>Row-major normalized centroids [Count, Dimension].</summary>
    public float[] Centroids { get; }

    /// <summary>The number of centroids.</summary>
    public int Count { get; }

    /// <summary>The vector size.</summary>
    public int Dimension { get; }

    /// <summary>How many token vectors the index held when the centroids were trained.</summary>
    public long TrainedTokens { get; }

    /// <summary>The default number of centroids for <paramref name="tokens"/> token vectors: a power of two near 4·√tokens, in [16, tokens].</summary>
    public static int AutoCount(long tokens)
    {
        var power = 1 << Math.Clamp((int)Math.Floor(Math.Log2(4 * Math.Sqrt(tokens))), 4, 20);
        return (int)Math.Min(power, tokens);
    }

    /// <summary>Spherical k-means over <paramref name="n"/> sample rows: k distinct sample rows to start, then assign by the largest dot product and replace each centroid by its cluster's normalized sum (an empty cluster restarts at a random sample row).</summary>
    public static float[] Train(float[] sample, int n, int dim, int k, int iterations, int seed)
    {
        TorchRuntime.EnsureInitialized(null);
        var rng = new Random(seed);
        var order = Enumerable.Range(0, n).ToArray();
        for (var i = 0; i < k; i++)
        {
            var j = rng.Next(i, n);
            (order[i], order[j]) = (order[j], order[i]);
        }
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        using var gemm = Gemm.Use(UseOneDnn);
        var x = tensor(sample, [n, dim]);
        var c = x.index_select(0, tensor(order.Take(k).Select(i => (long)i).ToArray())).clone();
        for (var it = 0; it < iterations; it++)
        {
            var labels = Nearest(x, c);
            var sums = zeros(k, dim).index_add_(0, labels, x, 1);
            var counts = labels.bincount(null, k).data<long>().ToArray();
            for (var i = 0; i < k; i++)
                if (counts[i] == 0) sums[i].copy_(x[rng.Next(n)]);
            c = nn.functional.normalize(sums, 2.0, 1, 1e-12);
        }
        return c.contiguous().data<float>().ToArray();
    }

    /// <summary>The nearest centroid (largest dot product) of each of <paramref name="n"/> rows.</summary>
    public int[] Assign(ReadOnlySpan<float> vectors, int n)
    {
        TorchRuntime.EnsureInitialized(null);
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        using var gemm = Gemm.Use(UseOneDnn);
        var c = tensor(Centroids, [Count, Dimension]);
        var x = tensor(vectors.ToArray(), [n, Dimension]);
        return Nearest(x, c).data<long>().ToArray().Select(v => (int)v).ToArray();
    }

    /// <summary>
    /// The argmax over centroids of each row's scores, in row chunks whose score matrix stays at 16 MB or less: glibc serves
    /// larger blocks by mmap, and the fresh pages of a 130 MB product made it 16x slower here.
    /// </summary>
    private static Tensor Nearest(Tensor x, Tensor c)
    {
        var n = x.shape[0];
        var chunk = Math.Max(256, (4L << 20) / c.shape[0]);
        if (n <= chunk) return Gemm.Linear(x, c, null).argmax(1);
        var parts = new List<Tensor>();
        for (long start = 0; start < n; start += chunk)
        {
            using var scores = Gemm.Linear(x.narrow(0, start, Math.Min(chunk, n - start)), c, null);
            parts.Add(scores.argmax(1));
        }
        return cat(parts, 0);
    }

    /// <summary>Whether float32 products may run on oneDNN (the library's CPU matmul choice, made once per process).</summary>
    private static bool UseOneDnn => MatmulSelection.Choose(CpuMatmulPath.Auto, CPU, ScalarType.Float32, NullLogger.Instance).UseOneDnn;

    /// <summary>Puts document <paramref name="document"/> into the lists of its unique centroids.</summary>
    public void Add(int document, int[] uniqueCodes)
    {
        foreach (var c in uniqueCodes) _lists[c].Add(document);
    }

    /// <summary>
    /// The best <paramref name="wanted"/> documents for the query by centroid interaction, among those in the inverted lists
    /// of each query vector's <see cref="PlaidOptions.Probes"/> nearest centroids. <paramref name="codesOf"/> gives a live
    /// document's unique centroids, or null for a removed one.
    /// </summary>
    public int[] Candidates(ReadOnlySpan<float> query, int nq, int wanted, int documents, Func<int, int[]?> codesOf, PlaidOptions options, int? parallelism)
    {
        var k = Count;
        var scores = new float[nq * k];
        MaxSim.Dots(query, nq, Centroids, k, Dimension, scores);
        // Transposed [centroid, query vector], so that a centroid's scores are one contiguous row.
        var byCentroid = new float[k * nq];
        for (var q = 0; q < nq; q++)
            for (var c = 0; c < k; c++) byCentroid[c * nq + q] = scores[q * k + c];

        var seen = new bool[documents];
        var candidates = new List<int>();
        var probes = Math.Clamp(options.Probes, 1, k);
        var top = new PriorityQueue<int, float>(probes);
        for (var q = 0; q < nq; q++)
        {
            top.Clear();
            var row = scores.AsSpan(q * k, k);
            for (var c = 0; c < k; c++)
            {
                if (top.Count < probes) top.Enqueue(c, row[c]);
                else if (top.TryPeek(out _, out var worst) && row[c] > worst) top.EnqueueDequeue(c, row[c]);
            }
            while (top.TryDequeue(out var c, out _))
                foreach (var d in _lists[c])
                    if (!seen[d])
                    {
                        seen[d] = true;
                        candidates.Add(d);
                    }
        }

        bool[]? allowed = null;
        if (options.CentroidScoreThreshold is { } threshold)
        {
            allowed = new bool[k];
            for (var c = 0; c < k; c++)
            {
                var best = float.NegativeInfinity;
                foreach (var s in byCentroid.AsSpan(c * nq, nq)) best = Math.Max(best, s);
                allowed[c] = best >= threshold;
            }
        }
        var approx = new float[candidates.Count];
        var body = (int i) =>
        {
            var codes = codesOf(candidates[i]);
            approx[i] = codes is null ? float.NegativeInfinity : Interaction(byCentroid, nq, codes, allowed);
        };
        if (candidates.Count >= 4096)
            Parallel.For(0, candidates.Count, new ParallelOptions { MaxDegreeOfParallelism = parallelism ?? -1 }, body);
        else
            for (var i = 0; i < candidates.Count; i++) body(i);

        var keep = new PriorityQueue<int, float>(wanted);
        for (var i = 0; i < candidates.Count; i++)
        {
            if (float.IsNegativeInfinity(approx[i])) continue;
            if (keep.Count < wanted) keep.Enqueue(candidates[i], approx[i]);
            else if (keep.TryPeek(out _, out var worst) && approx[i] > worst) keep.EnqueueDequeue(candidates[i], approx[i]);
        }
        var result = new int[keep.Count];
        for (var i = 0; i < result.Length; i++) result[i] = keep.Dequeue();
        return result;
    }

    /// <summary>Centroid interaction: Σ over query vectors of the best score among the document's (allowed) centroids.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static float Interaction(float[] byCentroid, int nq, int[] codes, bool[]? allowed)
    {
        Span<float> best = nq <= 256 ? stackalloc float[nq] : new float[nq];
        best.Fill(float.NegativeInfinity);
        var any = false;
        foreach (var c in codes)
        {
            if (allowed is not null && !allowed[c]) continue;
            any = true;
            var row = byCentroid.AsSpan(c * nq, nq);
            var i = 0;
            for (; i <= nq - Vector<float>.Count; i += Vector<float>.Count)
                Vector.Max(new Vector<float>(best[i..]), new Vector<float>(row[i..])).CopyTo(best[i..]);
            for (; i < nq; i++) best[i] = Math.Max(best[i], row[i]);
        }
        if (!any) return float.NegativeInfinity;
        var sum = 0f;
        foreach (var b in best)
            if (b > float.NegativeInfinity) sum += b;   // a query vector without an allowed centroid adds nothing
        return sum;
    }
}
