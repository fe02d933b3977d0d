using System.Buffers;
using TokenEmbed.Scoring;

namespace TokenEmbed.Pooling;

/// <summary>
/// PyLate's token pooling (<c>ColBERT.pool_embeddings_hierarchical</c>): a document's first <c>protected</c> vectors are kept
/// aside; the others' cosine similarities S = X·Xᵀ (float32) become observations 1 − S, which Ward linkage clusters by the
/// Euclidean distances between those rows (what scipy's <c>linkage(1 - S, method="ward")</c> does with a 2-D array); the
/// tree is cut into at most <c>max(n / poolFactor, 1)</c> flat clusters (<c>fcluster(criterion="maxclust")</c>); the result
/// is each cluster's mean, in scipy's cluster-label order, followed by the protected vectors.
/// </summary>
/// <remarks>
/// The linkage follows scipy's nearest-neighbour-chain algorithm with the Lance–Williams update for Ward distances
/// (distances in float64), its stable sort of the merges by height and its relabelling, and fcluster's search for the
/// smallest cut height giving at most the requested clusters, then its depth-first labelling. Ties are broken as scipy
/// breaks them: a nearest neighbour is the lowest-numbered cluster among equally near ones, except that the previous
/// element of the chain is preferred; equal heights keep their merge order. Equal results need equal float32 similarities,
/// so a near-tie can still fall the other way when the similarity sums are rounded differently.
/// </remarks>
internal static class HierarchicalPooling
{
    /// <summary>
    /// Pools one document's vectors [n, dim] as PyLate does, or with <paramref name="sentenceTransformers"/> as
    /// sentence-transformers v6's <c>pool_document_embeddings</c> does: Ward linkage over the condensed cosine distances
    /// 1 − S themselves (not the rows), the protected vectors first, and the document unchanged when the cut would keep every
    /// vector. <paramref name="poolFactor"/> 1 returns the document unchanged.
    /// </summary>
    public static PoolingOutput Pool(PoolingOutput document, int poolFactor, int protectedTokens, bool sentenceTransformers = false)
    {
        var n = document.Shape[0];
        var dim = document.Shape[1];
        var kept = Math.Min(protectedTokens, n);
        var rest = n - kept;
        if (poolFactor <= 1) return document;
        var data = document.Data;
        var tail = data.AsSpan(kept * dim, rest * dim);
        var clusters = Math.Max(rest / poolFactor, 1);
        float[] pooledRest;
        if (sentenceTransformers)
        {
            if (clusters >= rest) return document;
            pooledRest = Means(tail, rest, dim, CondensedLabels(tail, rest, dim, clusters));
        }
        else
        {
            pooledRest = rest switch
            {
                0 => [],
                1 => tail.ToArray(),
                _ => Means(tail, rest, dim, Labels(tail, rest, dim, clusters)),
            };
        }
        var result = new float[pooledRest.Length + kept * dim];
        var head = data.AsSpan(0, kept * dim);
        if (sentenceTransformers)
        {
            head.CopyTo(result);
            pooledRest.CopyTo(result, head.Length);
        }
        else
        {
            pooledRest.CopyTo(result, 0);
            head.CopyTo(result.AsSpan(pooledRest.Length));
        }
        return new PoolingOutput(result, [result.Length / dim, dim]);
    }

    /// <summary>sentence-transformers v6: the labels of Ward linkage over the condensed float32 distances 1 − S (1-based).</summary>
    public static int[] CondensedLabels(ReadOnlySpan<float> x, int n, int dim, int maxClusters) =>
        Cut(CondensedCosineDistances(x, n, dim), n, maxClusters);

    /// <summary>Ward linkage over the (rented) condensed distances, which it consumes, then fcluster's maxclust cut.</summary>
    private static int[] Cut(double[] distances, int n, int maxClusters)
    {
        try
        {
            return MaxClust(WardLinkage(distances, n), n, maxClusters);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(distances);
        }
    }

    /// <summary>The upper triangle of 1 − X·Xᵀ in float32, widened, row by row (numpy's <c>triu_indices(n, k=1)</c> order).</summary>
    private static double[] CondensedCosineDistances(ReadOnlySpan<float> x, int n, int dim)
    {
        // Temporaries of a few hundred KB each are rented: as fresh large-object arrays they cost a gen-2 collection now
        // and then, which doubled the time per document in a steady loop.
        var similarities = ArrayPool<float>.Shared.Rent(n * n);
        MaxSim.Dots(x, n, x, n, dim, similarities);
        var d = ArrayPool<double>.Shared.Rent(n * (n - 1) / 2);
        var at = 0;
        for (var i = 0; i < n; i++)
            for (var j = i + 1; j < n; j++) d[at++] = 1f - similarities[i * n + j];
        ArrayPool<float>.Shared.Return(similarities);
        return d;
    }

    /// <summary>The mean of each cluster 1..max label, in label order (fcluster numbers clusters 1..k without gaps).</summary>
    private static float[] Means(ReadOnlySpan<float> x, int n, int dim, int[] labels)
    {
        var clusters = labels.Max();
        var sums = new double[clusters * dim];
        var counts = new int[clusters];
        for (var i = 0; i < n; i++)
        {
            var c = labels[i] - 1;
            counts[c]++;
            var row = x.Slice(i * dim, dim);
            for (var k = 0; k < dim; k++) sums[c * dim + k] += row[k];
        }
        var result = new float[clusters * dim];
        for (var c = 0; c < clusters; c++)
            for (var k = 0; k < dim; k++) result[c * dim + k] = (float)(sums[c * dim + k] / counts[c]);
        return result;
    }

    /// <summary>scipy's <c>fcluster(linkage(1 - X·Xᵀ, "ward"), maxClusters, "maxclust")</c> labels (1-based) of n ≥ 2 rows.</summary>
    public static int[] Labels(ReadOnlySpan<float> x, int n, int dim, int maxClusters)
    {
        return Cut(Observations(x, n, dim), n, maxClusters);
    }

    /// <summary>Condensed Euclidean distances (float64) between the rows of the float32 matrix 1 − X·Xᵀ.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static double[] Observations(ReadOnlySpan<float> x, int n, int dim)
    {
        var similarities = ArrayPool<float>.Shared.Rent(n * n);
        MaxSim.Dots(x, n, x, n, dim, similarities);
        // Symmetric like a product's, whichever way round each dot was summed; then the float32 observations, widened.
        var obs = ArrayPool<double>.Shared.Rent(n * n);
        for (var i = 0; i < n; i++)
            for (var j = i; j < n; j++)
            {
                var v = (double)(1f - similarities[i * n + j]);
                obs[i * n + j] = v;
                obs[j * n + i] = v;
            }
        ArrayPool<float>.Shared.Return(similarities);
        var d = ArrayPool<double>.Shared.Rent(n * (n - 1) / 2);
        var at = 0;
        var lanes = System.Numerics.Vector<double>.Count;
        for (var i = 0; i < n; i++)
        {
            var a = obs.AsSpan(i * n, n);
            for (var j = i + 1; j < n; j++)
            {
                var b = obs.AsSpan(j * n, n);
                var acc = System.Numerics.Vector<double>.Zero;
                var k = 0;
                for (; k <= n - lanes; k += lanes)
                {
                    var diff = new System.Numerics.Vector<double>(a[k..]) - new System.Numerics.Vector<double>(b[k..]);
                    acc += diff * diff;
                }
                var sum = System.Numerics.Vector.Sum(acc);
                for (; k < n; k++)
                {
                    var diff = a[k] - b[k];
                    sum += diff * diff;
                }
                d[at++] = Math.Sqrt(sum);
            }
        }
        ArrayPool<double>.Shared.Return(obs);
        return d;
    }

    private static int Condensed(int n, int i, int j)
    {
        if (i > j) (i, j) = (j, i);
        return n * i - i * (i + 1) / 2 + (j - i - 1);
    }

    /// <summary>One merge of the linkage matrix: the two nodes (left &lt; right), the height and the size.</summary>
    private struct Merge
    {
        public int Left, Right, Size;
        public double Height;
    }

    /// <summary>Ward linkage by the nearest-neighbour chain, sorted by height (stable) and relabelled as scipy does.</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private static Merge[] WardLinkage(double[] distances, int n)
    {
        var d = distances;
        var size = new int[n];
        Array.Fill(size, 1);
        var chain = new int[n];
        var chainLength = 0;
        var z = new Merge[n - 1];
        for (var k = 0; k < n - 1; k++)
        {
            if (chainLength == 0)
            {
                chainLength = 1;
                chain[0] = Array.FindIndex(size, s => s > 0);
            }
            int x, y = 0;
            double best;
            while (true)
            {
                x = chain[chainLength - 1];
                // The previous element of the chain wins ties, so that the chain cannot cycle.
                if (chainLength > 1)
                {
                    y = chain[chainLength - 2];
                    best = d[Condensed(n, x, y)];
                }
                else
                {
                    best = double.PositiveInfinity;
                }
                for (var i = 0; i < n; i++)
                {
                    if (size[i] == 0 || i == x) continue;
                    var dist = d[Condensed(n, x, i)];
                    if (dist < best)
                    {
                        best = dist;
                        y = i;
                    }
                }
                if (chainLength > 1 && y == chain[chainLength - 2]) break;
                chain[chainLength++] = y;
            }
            chainLength -= 2;
            if (x > y) (x, y) = (y, x);
            int nx = size[x], ny = size[y];
            z[k] = new Merge { Left = x, Right = y, Height = best, Size = nx + ny };
            size[x] = 0;
            size[y] = nx + ny;
            for (var i = 0; i < n; i++)
            {
                var ni = size[i];
                if (ni == 0 || i == y) continue;
                double dxi = d[Condensed(n, i, x)], dyi = d[Condensed(n, i, y)];
                var t = 1.0 / (nx + ny + ni);
                d[Condensed(n, i, y)] = Math.Sqrt((ni + nx) * t * dxi * dxi + (ni + ny) * t * dyi * dyi - ni * t * best * best);
            }
        }
        // Stable sort by height, then node ids as scipy numbers them (leaves 0..n-1, merge k is node n + k).
        var sorted = z.Select((m, i) => (m, i)).OrderBy(p => p.m.Height).ThenBy(p => p.i).Select(p => p.m).ToArray();
        var parent = Enumerable.Range(0, 2 * n - 1).ToArray();
        var sizes = new int[2 * n - 1];
        Array.Fill(sizes, 1);
        int Find(int v)
        {
            var root = v;
            while (parent[root] != root) root = parent[root];
            while (parent[v] != root) (v, parent[v]) = (parent[v], root);
            return root;
        }
        for (var i = 0; i < n - 1; i++)
        {
            int a = Find(sorted[i].Left), b = Find(sorted[i].Right);
            sorted[i].Left = Math.Min(a, b);
            sorted[i].Right = Math.Max(a, b);
            parent[a] = parent[b] = n + i;
            sizes[n + i] = sizes[a] + sizes[b];
            sorted[i].Size = sizes[n + i];
        }
        return sorted;
    }

    /// <summary>fcluster's maxclust: the smallest cut height (a node's largest height below it) giving at most <paramref name="maxClusters"/>.</summary>
    private static int[] MaxClust(Merge[] z, int n, int maxClusters)
    {
        var labels = new int[n];
        if (maxClusters >= n)
        {
            for (var i = 0; i < n; i++) labels[i] = i + 1;
            return labels;
        }
        // The monotone criterion: the largest height in each node's subtree (children come before parents in z).
        var mc = new double[n - 1];
        for (var i = 0; i < n - 1; i++)
        {
            var m = z[i].Height;
            if (z[i].Left >= n) m = Math.Max(m, mc[z[i].Left - n]);
            if (z[i].Right >= n) m = Math.Max(m, mc[z[i].Right - n]);
            mc[i] = m;
        }
        int lower = -1, upper = n - 1;
        while (upper - lower > 1)
        {
            var mid = (lower + upper) >> 1;
            if (CountClusters(z, mc, n, mc[mid], maxClusters) > maxClusters) lower = mid;
            else upper = mid;
        }
        Label(z, mc, n, mc[upper], labels);
        return labels;
    }

    /// <summary>How many flat clusters the cut at <paramref name="cutoff"/> gives (stops counting past <paramref name="limit"/>).</summary>
    private static int CountClusters(Merge[] z, double[] mc, int n, double cutoff, int limit)
    {
        var count = 0;
        var stack = new Stack<int>();
        stack.Push(n - 2);
        while (stack.Count > 0 && count <= limit)
        {
            var node = stack.Pop();
            if (mc[node] <= cutoff)
            {
                count++;
                continue;
            }
            foreach (var child in new[] { z[node].Left, z[node].Right })
            {
                if (child >= n) stack.Push(child - n);
                else count++;
            }
        }
        return count;
    }

    /// <summary>
    /// fcluster's labelling: a depth-first walk from the root that enters a node's left subtree, then its right subtree, and
    /// only then numbers the node's leaf children (left, then right); a subtree under the cut is one cluster, numbered when
    /// the walk first reaches it.
    /// </summary>
    private static void Label(Merge[] z, double[] mc, int n, double cutoff, int[] labels)
    {
        var clusters = 0;
        var leader = -1;
        var visited = new bool[2 * n - 1];
        var stack = new int[n];
        var k = 0;
        stack[0] = n - 2;
        while (k >= 0)
        {
            var node = stack[k];
            var (left, right) = (z[node].Left, z[node].Right);
            if (leader == -1 && mc[node] <= cutoff)
            {
                leader = node;
                clusters++;
            }
            if (left >= n && !visited[left])
            {
                visited[left] = true;
                stack[++k] = left - n;
                continue;
            }
            if (right >= n && !visited[right])
            {
                visited[right] = true;
                stack[++k] = right - n;
                continue;
            }
            if (left < n) labels[left] = leader == -1 ? ++clusters : clusters;
            if (right < n) labels[right] = leader == -1 ? ++clusters : clusters;
            if (leader == node) leader = -1;
            k--;
        }
    }
}
