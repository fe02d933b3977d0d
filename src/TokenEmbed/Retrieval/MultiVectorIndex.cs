using System.Runtime.InteropServices;
using TokenEmbed.Scoring;

namespace TokenEmbed.Retrieval;

/// <summary>
/// An in-process multi-vector index: documents as token vectors (TokenEmbed outputs, e.g. PyLate document encodings),
/// searched by MaxSim. Exact search scores every document, in parallel, with SIMD dot products; with
/// <see cref="MultiVectorIndexOptions.Plaid"/> a PLAID-style candidate stage picks the documents to score exactly.
/// Vectors are stored as float32 or float16; a loaded index reads them in place from its memory-mapped file.
/// Thread-safe: searches run concurrently; adds, removes and training take a write lock.
/// </summary>
public sealed class MultiVectorIndex : IDisposable
{
    private sealed class Doc(string id, int tokens)
    {
        public string Id { get; } = id;
        public int Tokens { get; } = tokens;
        public Array? Vectors;          // float[] or Half[], for documents added in memory
        public long Mapped = -1;        // the element offset in the mapped vectors section, for loaded documents
        public int[]? Codes;            // its unique centroids (candidate stage)
        public bool Removed;
    }

    private readonly List<Doc> _docs = [];
    private readonly Dictionary<string, int> _byId = new(StringComparer.Ordinal);
    private readonly ReaderWriterLockSlim _lock = new();
    private readonly MultiVectorIndexOptions _options;
    private readonly int _width;
    private CentroidStage? _stage;
    private MappedFile? _file;
    private long _vectorsOffset;
    private long _tokens;
    private int _maxTokens;
    private bool _disposed;

    /// <summary>An empty index of vectors of <paramref name="dimension"/> components.</summary>
    /// <param name="dimension">The size of every token vector.</param>
    /// <param name="options">Storage and search options.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dimension"/> is not positive, or an option is out of range.</exception>
    public MultiVectorIndex(int dimension, MultiVectorIndexOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        Dimension = dimension;
        _options = options ?? new MultiVectorIndexOptions();
        if (_options.Plaid is { } p)
        {
            if (p.Centroids is <= 0) throw new ArgumentOutOfRangeException(nameof(options), p.Centroids, "PlaidOptions.Centroids must be positive.");
            if (p.Probes <= 0) throw new ArgumentOutOfRangeException(nameof(options), p.Probes, "PlaidOptions.Probes must be positive.");
            if (p.Candidates <= 0) throw new ArgumentOutOfRangeException(nameof(options), p.Candidates, "PlaidOptions.Candidates must be positive.");
            if (p.KMeansIterations < 0) throw new ArgumentOutOfRangeException(nameof(options), p.KMeansIterations, "PlaidOptions.KMeansIterations must not be negative.");
        }
        _width = Precision == VectorPrecision.Float16 ? 2 : 4;
    }

    /// <summary>The size of every token vector.</summary>
    public int Dimension { get; }

    /// <summary>How the vectors are stored.</summary>
    public VectorPrecision Precision => _options.Precision;

    /// <summary>The number of documents.</summary>
    public int Count
    {
        get
        {
            _lock.EnterReadLock();
            try { return _byId.Count; } finally { _lock.ExitReadLock(); }
        }
    }

    /// <summary>Whether the candidate stage's centroids are trained (they are on the first search with <see cref="MultiVectorIndexOptions.Plaid"/>).</summary>
    public bool HasCandidateStage
    {
        get
        {
            _lock.EnterReadLock();
            try { return _stage is not null; } finally { _lock.ExitReadLock(); }
        }
    }

    /// <summary>Adds a document's token vectors (copied, in the index's precision).</summary>
    /// <param name="id">The document's id; must not be in the index yet.</param>
    /// <param name="vectors">Token vectors [num_tokens ≥ 1, <see cref="Dimension"/>], finite (and within ±65504 for float16).</param>
    /// <exception cref="ArgumentException">The id is taken, or the vectors have the wrong shape or an unstorable value.</exception>
    public void Add(string id, PoolingOutput vectors)
    {
        ArgumentNullException.ThrowIfNull(id);
        var data = Checked(vectors, nameof(vectors), Precision);
        var tokens = vectors.Shape[0];
        var doc = new Doc(id, tokens) { Vectors = Precision == VectorPrecision.Float16 ? data.Select(v => (Half)v).ToArray() : data };
        _lock.EnterWriteLock();
        try
        {
            ThrowIfDisposed();
            if (_byId.ContainsKey(id)) throw new ArgumentException($"Document '{id}' is in the index already.", nameof(id));
            var number = _docs.Count;
            if (_stage is not null)
            {
                doc.Codes = _stage.Assign(data, tokens).Distinct().Order().ToArray();
                _stage.Add(number, doc.Codes);
            }
            _docs.Add(doc);
            _byId.Add(id, number);
            _tokens += tokens;
            _maxTokens = Math.Max(_maxTokens, tokens);
        }
        finally { _lock.ExitWriteLock(); }
    }

    /// <summary>Encodes <paramref name="texts"/> as documents (<see cref="InputType.Document"/>, TokenEmbed) and adds them.</summary>
    /// <param name="llm">A late-interaction model whose vectors have <see cref="Dimension"/> components.</param>
    /// <param name="ids">The documents' ids, one per text.</param>
    /// <param name="texts">The documents.</param>
    /// <param name="poolingParams">Further settings (e.g. <see cref="PoolingParams.PoolFactor"/>); the input type is always Document.</param>
    /// <exception cref="ArgumentException">The counts differ, an id is taken or repeated, or the model's vectors have another size.</exception>
    public void Add(Llm llm, IReadOnlyList<string> ids, IReadOnlyList<string> texts, PoolingParams? poolingParams = null) =>
        AddAsync(llm, ids, texts, poolingParams).GetAwaiter().GetResult();

    /// <summary>Encodes <paramref name="texts"/> as documents (<see cref="InputType.Document"/>, TokenEmbed) and adds them.</summary>
    /// <param name="llm">A late-interaction model whose vectors have <see cref="Dimension"/> components.</param>
    /// <param name="ids">The documents' ids, one per text.</param>
    /// <param name="texts">The documents.</param>
    /// <param name="poolingParams">Further settings (e.g. <see cref="PoolingParams.PoolFactor"/>); the input type is always Document.</param>
    /// <param name="cancellationToken">Cancels the encoding; documents are added only when all are encoded.</param>
    /// <exception cref="ArgumentException">The counts differ, an id is taken or repeated, or the model's vectors have another size.</exception>
    public async Task AddAsync(Llm llm, IReadOnlyList<string> ids, IReadOnlyList<string> texts, PoolingParams? poolingParams = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(llm);
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(texts);
        if (ids.Count != texts.Count) throw new ArgumentException($"{ids.Count} ids for {texts.Count} texts.", nameof(ids));
        if (ids.Distinct(StringComparer.Ordinal).Count() != ids.Count) throw new ArgumentException("The ids repeat.", nameof(ids));
        var encoded = await llm.EncodeAsync(texts, PoolingTask.TokenEmbed, As(poolingParams, InputType.Document), cancellationToken).ConfigureAwait(false);
        for (var i = 0; i < ids.Count; i++) Add(ids[i], encoded[i].Outputs);
    }

    /// <summary>Removes a document; false when the id is not in the index.</summary>
    /// <param name="id">The document's id.</param>
    public bool Remove(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        _lock.EnterWriteLock();
        try
        {
            ThrowIfDisposed();
            if (!_byId.Remove(id, out var number)) return false;
            var doc = _docs[number];
            doc.Removed = true;
            doc.Vectors = null;
            _tokens -= doc.Tokens;
            return true;
        }
        finally { _lock.ExitWriteLock(); }
    }

    /// <summary>
    /// The <paramref name="k"/> documents with the highest MaxSim score for <paramref name="query"/>, best first (ties by id):
    /// exact, or through the candidate stage when <see cref="MultiVectorIndexOptions.Plaid"/> is set.
    /// </summary>
    /// <param name="query">The query's token vectors [num_tokens ≥ 1, <see cref="Dimension"/>].</param>
    /// <param name="k">How many hits at most.</param>
    /// <exception cref="ArgumentException">The query has the wrong shape or a non-finite value, or <paramref name="k"/> is not positive.</exception>
    public IReadOnlyList<SearchHit> Search(PoolingOutput query, int k) => Search(query, k, exact: false);

    /// <summary>The exact top <paramref name="k"/> (every document scored), whatever the options say: the reference for the candidate stage's recall.</summary>
    /// <param name="query">The query's token vectors [num_tokens ≥ 1, <see cref="Dimension"/>].</param>
    /// <param name="k">How many hits at most.</param>
    /// <exception cref="ArgumentException">The query has the wrong shape or a non-finite value, or <paramref name="k"/> is not positive.</exception>
    public IReadOnlyList<SearchHit> SearchExact(PoolingOutput query, int k) => Search(query, k, exact: true);

    /// <summary>Encodes <paramref name="query"/> as a query (<see cref="InputType.Query"/>) and searches with it.</summary>
    /// <param name="llm">The model the documents were encoded with.</param>
    /// <param name="query">The query text.</param>
    /// <param name="k">How many hits at most.</param>
    /// <param name="cancellationToken">Cancels the encoding.</param>
    public async Task<IReadOnlyList<SearchHit>> SearchAsync(Llm llm, string query, int k, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(llm);
        ArgumentNullException.ThrowIfNull(query);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        var encoded = await llm.EncodeAsync([query], PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query }, cancellationToken).ConfigureAwait(false);
        return Search(encoded[0].Outputs, k);
    }

    private IReadOnlyList<SearchHit> Search(PoolingOutput query, int k, bool exact)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        var q = Checked(query, nameof(query), VectorPrecision.Float32);
        var nq = query.Shape[0];
        if (!exact) EnsureStage();
        _lock.EnterReadLock();
        try
        {
            ThrowIfDisposed();
            IReadOnlyList<int> pool;
            if (!exact && _options.Plaid is { } plaid && _stage is { } stage)
                pool = stage.Candidates(q, nq, Math.Max(plaid.Candidates, k), _docs.Count, d => _docs[d].Removed ? null : _docs[d].Codes, plaid,
                    _options.MaxDegreeOfParallelism);
            else
                pool = _byId.Values.ToArray();
            return Rank(q, nq, pool, k);
        }
        finally { _lock.ExitReadLock(); }
    }

    /// <summary>Exact MaxSim of the query with each document in <paramref name="pool"/>, then the top k (ties by id).</summary>
    private SearchHit[] Rank(float[] q, int nq, IReadOnlyList<int> pool, int k)
    {
        var scores = new float[pool.Count];
        Parallel.For(0, pool.Count, new ParallelOptions { MaxDegreeOfParallelism = _options.MaxDegreeOfParallelism ?? -1 },
            () => Precision == VectorPrecision.Float16 ? new float[_maxTokens * Dimension] : [],
            (i, _, scratch) =>
            {
                var doc = _docs[pool[i]];
                scores[i] = MaxSim.Score(q, nq, Floats(doc, scratch), doc.Tokens, Dimension);
                return scratch;
            }, _ => { });
        var worstFirst = Comparer<(float Score, string Id)>.Create((a, b) =>
            a.Score != b.Score ? a.Score.CompareTo(b.Score) : string.CompareOrdinal(b.Id, a.Id));
        var top = new PriorityQueue<string, (float Score, string Id)>(k + 1, worstFirst);
        for (var i = 0; i < pool.Count; i++)
        {
            var entry = (scores[i], _docs[pool[i]].Id);
            if (top.Count < k) top.Enqueue(entry.Id, entry);
            else if (top.TryPeek(out _, out var worst) && worstFirst.Compare(entry, worst) > 0) top.EnqueueDequeue(entry.Id, entry);
        }
        var hits = new SearchHit[top.Count];
        for (var i = hits.Length - 1; i >= 0; i--)
        {
            top.TryDequeue(out var id, out var e);
            hits[i] = new SearchHit(id!, e.Score);
        }
        return hits;
    }

    /// <summary>A document's vectors as float32: in place (float32 storage) or converted into <paramref name="scratch"/> (float16).</summary>
    private ReadOnlySpan<float> Floats(Doc doc, float[] scratch)
    {
        var count = doc.Tokens * Dimension;
        if (Precision == VectorPrecision.Float32)
            return doc.Vectors is float[] f ? f : _file!.Values<float>(_vectorsOffset + doc.Mapped * 4, count);
        var half = doc.Vectors is Half[] h ? h : _file!.Values<Half>(_vectorsOffset + doc.Mapped * 2, count);
        var result = scratch.AsSpan(0, count);
        MaxSim.ToSingle(half, result);
        return result;
    }

    /// <summary>A document's stored bytes (little-endian values of the index's precision).</summary>
    private ReadOnlySpan<byte> Bytes(Doc doc)
    {
        return doc.Vectors switch
        {
            float[] f => MemoryMarshal.AsBytes(f.AsSpan()),
            Half[] h => MemoryMarshal.AsBytes(h.AsSpan()),
            _ => _file!.Bytes(_vectorsOffset + doc.Mapped * _width, checked(doc.Tokens * Dimension * _width)),
        };
    }

    /// <summary>Trains the candidate stage when it is asked for and missing, or the index has doubled since it was trained.</summary>
    private void EnsureStage()
    {
        if (_options.Plaid is not { } plaid) return;
        bool Needed() => _tokens > 0 && (_stage is null || _tokens >= 2 * _stage.TrainedTokens);
        _lock.EnterReadLock();
        try
        {
            ThrowIfDisposed();
            if (!Needed()) return;
        }
        finally { _lock.ExitReadLock(); }
        _lock.EnterWriteLock();
        try
        {
            ThrowIfDisposed();
            if (Needed()) Train(plaid);
        }
        finally { _lock.ExitWriteLock(); }
    }

    /// <summary>k-means on a seeded sample of the live token vectors, then every document assigned its unique centroids.</summary>
    private void Train(PlaidOptions plaid)
    {
        var live = _docs.Select((d, i) => (d, i)).Where(x => !x.d.Removed).ToArray();
        var k = (int)Math.Min(plaid.Centroids ?? CentroidStage.AutoCount(_tokens), _tokens);
        // About 40 sample vectors a centroid (faiss's minimum before it warns), at least 64k.
        var wanted = Math.Min(_tokens, Math.Max(40L * k, 65536));
        var rng = new Random(plaid.Seed);
        var p = (double)wanted / _tokens;
        var sample = new List<float>();
        var scratch = new float[_maxTokens * Dimension];
        foreach (var (doc, _) in live)
        {
            var v = Floats(doc, scratch);
            for (var t = 0; t < doc.Tokens; t++)
                if (p >= 1 || rng.NextDouble() < p) sample.AddRange(v.Slice(t * Dimension, Dimension));
        }
        var n = sample.Count / Dimension;
        if (n < k)
        {
            sample.Clear();
            foreach (var (doc, _) in live) sample.AddRange(Floats(doc, scratch));
            n = sample.Count / Dimension;
        }
        var centroids = CentroidStage.Train(CollectionsMarshal.AsSpan(sample).ToArray(), n, Dimension, k, plaid.KMeansIterations, plaid.Seed);
        var stage = new CentroidStage(centroids, k, Dimension, _tokens);
        // Assign in groups of documents of about 32k vectors (one product each; buffers below glibc's mmap threshold).
        var group = new List<(Doc Doc, int Number)>();
        var buffer = new List<float>();
        void Flush()
        {
            if (group.Count == 0) return;
            var codes = stage.Assign(CollectionsMarshal.AsSpan(buffer), buffer.Count / Dimension);
            var at = 0;
            foreach (var (doc, number) in group)
            {
                doc.Codes = codes.AsSpan(at, doc.Tokens).ToArray().Distinct().Order().ToArray();
                at += doc.Tokens;
                stage.Add(number, doc.Codes);
            }
            group.Clear();
            buffer.Clear();
        }
        foreach (var (doc, number) in live)
        {
            group.Add((doc, number));
            buffer.AddRange(Floats(doc, scratch));
            if (buffer.Count >= 32768 * Dimension) Flush();
        }
        Flush();
        _stage = stage;
    }

    private float[] Checked(PoolingOutput vectors, string name, VectorPrecision precision)
    {
        ArgumentNullException.ThrowIfNull(vectors, name);
        if (vectors.Shape is not [var n, var dim] || n <= 0 || dim != Dimension || (long)n * dim != vectors.Data.Length)
            throw new ArgumentException(
                $"{name} must be token vectors [num_tokens > 0, {Dimension}]; got shape [{string.Join(", ", vectors.Shape)}] with {vectors.Data.Length} values.", name);
        var limit = precision == VectorPrecision.Float16 ? 65504f : float.MaxValue;
        if (Array.FindIndex(vectors.Data, v => !float.IsFinite(v) || Math.Abs(v) > limit) is var bad and >= 0)
            throw new ArgumentException(
                $"{name} has {(float.IsFinite(vectors.Data[bad]) ? "a value beyond float16's range (±65504)" : "a non-finite value")} at token {bad / Dimension}.", name);
        return vectors.Data.ToArray();
    }

    private static PoolingParams As(PoolingParams? p, InputType type) => new()
    {
        Dimensions = p?.Dimensions, Normalize = p?.Normalize, PoolFactor = p?.PoolFactor, ProtectedTokens = p?.ProtectedTokens, InputType = type,
    };

    /// <summary>
    /// Writes the index to <paramref name="path"/> (through a temporary file renamed over it): the live documents, their
    /// vectors in the index's precision and, when the candidate stage is asked for, its centroids (trained first if needed).
    /// </summary>
    /// <param name="path">The file.</param>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        EnsureStage();
        _lock.EnterReadLock();
        try
        {
            ThrowIfDisposed();
            var live = _docs.Where(d => !d.Removed).ToArray();
            var stage = _options.Plaid is null ? null : _stage;
            IndexFile.Write(Path.GetFullPath(path), Dimension, Precision, live.Select(d => (d.Id, d.Tokens, d.Codes)).ToArray(), i => Bytes(live[i]), stage);
        }
        finally { _lock.ExitReadLock(); }
    }

    /// <summary>
    /// Opens an index written by <see cref="Save"/>: the file is memory-mapped and its vectors are read in place (the index
    /// keeps the file open until disposed). Every section is checked, checksums included, before the index is returned.
    /// </summary>
    /// <param name="path">The file.</param>
    /// <param name="options">Search options; null = exact search, or the candidate stage with default settings when the file has centroids. The precision is the file's.</param>
    /// <exception cref="InvalidDataException">The file is not an index, or is truncated or corrupt (the message names the file and the problem).</exception>
    public static MultiVectorIndex Load(string path, MultiVectorIndexOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var c = IndexFile.Open(path);
        var index = new MultiVectorIndex(c.Dimension, new MultiVectorIndexOptions
        {
            MaxDegreeOfParallelism = options?.MaxDegreeOfParallelism,
            Precision = c.Precision,
            Plaid = options is null ? (c.CentroidCount > 0 ? new PlaidOptions() : null) : options.Plaid,
        })
        {
            _file = c.File,
            _vectorsOffset = c.VectorsOffset,
        };
        if (c.Centroids is { } centroids) index._stage = new CentroidStage(centroids, c.CentroidCount, c.Dimension, c.TrainedTokens);
        foreach (var e in c.Documents)
        {
            var number = index._docs.Count;
            index._docs.Add(new Doc(e.Id, e.Tokens) { Mapped = e.VectorOffset, Codes = e.Codes });
            index._byId.Add(e.Id, number);
            index._stage?.Add(number, e.Codes!);
            index._tokens += e.Tokens;
            index._maxTokens = Math.Max(index._maxTokens, e.Tokens);
        }
        return index;
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(_disposed, this);

    /// <summary>Closes the memory-mapped file of a loaded index; the index cannot be used afterwards.</summary>
    public void Dispose()
    {
        _lock.EnterWriteLock();
        try
        {
            if (_disposed) return;
            _disposed = true;
            _file?.Dispose();
            _file = null;
        }
        finally { _lock.ExitWriteLock(); }
    }
}
