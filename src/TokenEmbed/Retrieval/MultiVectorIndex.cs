using System.Buffers.Binary;
using System.Text;
using TokenEmbed.Scoring;

namespace TokenEmbed.Retrieval;

/// <summary>
/// An in-process multi-vector index: documents as token vectors (TokenEmbed outputs, e.g. PyLate document encodings),
/// searched exactly by MaxSim over every document, in parallel, with SIMD dot products. Thread-safe: searches run
/// concurrently; adds and removes take a write lock. Saved as one binary file with a checked layout.
/// </summary>
public sealed class MultiVectorIndex
{
    private const string Magic = "TEMVIDX1";
    private readonly Dictionary<string, float[]> _documents = new(StringComparer.Ordinal);
    private readonly ReaderWriterLockSlim _lock = new();
    private readonly MultiVectorIndexOptions _options;

    /// <summary>An empty index of vectors of <paramref name="dimension"/> components.</summary>
    /// <param name="dimension">The size of every token vector.</param>
    /// <param name="options">Search options.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="dimension"/> is not positive.</exception>
    public MultiVectorIndex(int dimension, MultiVectorIndexOptions? options = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(dimension);
        Dimension = dimension;
        _options = options ?? new MultiVectorIndexOptions();
    }

    /// <summary>The size of every token vector.</summary>
    public int Dimension { get; }

    /// <summary>The number of documents.</summary>
    public int Count
    {
        get
        {
            _lock.EnterReadLock();
            try { return _documents.Count; } finally { _lock.ExitReadLock(); }
        }
    }

    /// <summary>Adds a document's token vectors (copied).</summary>
    /// <param name="id">The document's id; must not be in the index yet.</param>
    /// <param name="vectors">Token vectors [num_tokens ≥ 1, <see cref="Dimension"/>], finite.</param>
    /// <exception cref="ArgumentException">The id is taken, or the vectors have the wrong shape or a non-finite value.</exception>
    public void Add(string id, PoolingOutput vectors)
    {
        ArgumentNullException.ThrowIfNull(id);
        var data = Checked(vectors, nameof(vectors));
        _lock.EnterWriteLock();
        try
        {
            if (!_documents.TryAdd(id, data)) throw new ArgumentException($"Document '{id}' is in the index already.", nameof(id));
        }
        finally { _lock.ExitWriteLock(); }
    }

    /// <summary>Removes a document; false when the id is not in the index.</summary>
    /// <param name="id">The document's id.</param>
    public bool Remove(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        _lock.EnterWriteLock();
        try { return _documents.Remove(id); } finally { _lock.ExitWriteLock(); }
    }

    /// <summary>The <paramref name="k"/> documents with the highest MaxSim score for <paramref name="query"/>, best first (ties by id).</summary>
    /// <param name="query">The query's token vectors [num_tokens ≥ 1, <see cref="Dimension"/>].</param>
    /// <param name="k">How many hits at most.</param>
    /// <exception cref="ArgumentException">The query has the wrong shape or a non-finite value, or <paramref name="k"/> is not positive.</exception>
    public IReadOnlyList<SearchHit> Search(PoolingOutput query, int k)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(k);
        var q = new PoolingOutput(Checked(query, nameof(query)), query.Shape);
        _lock.EnterReadLock();
        try
        {
            var docs = _documents.ToArray();
            var scores = new float[docs.Length];
            Parallel.For(0, docs.Length, new ParallelOptions { MaxDegreeOfParallelism = _options.MaxDegreeOfParallelism ?? -1 },
                i => scores[i] = MaxSim.Score(q, new PoolingOutput(docs[i].Value, [docs[i].Value.Length / Dimension, Dimension])));
            return Enumerable.Range(0, docs.Length)
                .OrderByDescending(i => scores[i]).ThenBy(i => docs[i].Key, StringComparer.Ordinal)
                .Take(k).Select(i => new SearchHit(docs[i].Key, scores[i])).ToArray();
        }
        finally { _lock.ExitReadLock(); }
    }

    private float[] Checked(PoolingOutput vectors, string name)
    {
        ArgumentNullException.ThrowIfNull(vectors, name);
        if (vectors.Shape is not [var n, var dim] || n <= 0 || dim != Dimension || (long)n * dim != vectors.Data.Length)
            throw new ArgumentException(
                $"{name} must be token vectors [num_tokens > 0, {Dimension}]; got shape [{string.Join(", ", vectors.Shape)}] with {vectors.Data.Length} values.", name);
        if (Array.FindIndex(vectors.Data, v => !float.IsFinite(v)) is var bad and >= 0)
            throw new ArgumentException($"{name} has a non-finite value at token {bad / Dimension}.", name);
        return vectors.Data.ToArray();
    }

    /// <summary>Writes the index to <paramref name="path"/> (replaced atomically).</summary>
    /// <param name="path">The file.</param>
    public void Save(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var tmp = path + ".tmp";
        _lock.EnterReadLock();
        try
        {
            using (var w = new BinaryWriter(File.Create(tmp), Encoding.UTF8))
            {
                w.Write(Encoding.ASCII.GetBytes(Magic));
                w.Write(Dimension);
                w.Write(_documents.Count);
                foreach (var (id, data) in _documents)
                {
                    var bytes = Encoding.UTF8.GetBytes(id);
                    w.Write(bytes.Length);
                    w.Write(bytes);
                    w.Write(data.Length / Dimension);
                    foreach (var v in data) w.Write(v);   // little-endian float32
                }
                w.Write(Encoding.ASCII.GetBytes(Magic));
            }
            File.Move(tmp, path, overwrite: true);
        }
        finally { _lock.ExitReadLock(); }
    }

    /// <summary>Reads an index written by <see cref="Save"/>.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="InvalidDataException">The file is not an index, or is truncated or corrupt (the message names the file and the place).</exception>
    public static MultiVectorIndex Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var bytes = File.ReadAllBytes(path);
        var at = 0;
        InvalidDataException Bad(string what) => new($"'{path}' is not a valid TokenEmbed index: {what} (at byte {at} of {bytes.Length}).");
        ReadOnlySpan<byte> Take(int n)
        {
            if (n < 0 || bytes.Length - at < n) throw Bad("the file ends early (truncated?)");
            var s = bytes.AsSpan(at, n);
            at += n;
            return s;
        }
        int Int() => BinaryPrimitives.ReadInt32LittleEndian(Take(4));
        if (Encoding.ASCII.GetString(Take(Magic.Length)) != Magic) throw Bad("wrong file signature");
        var dim = Int();
        if (dim <= 0 || dim > 1 << 16) throw Bad($"dimension {dim}");
        var count = Int();
        if (count < 0) throw Bad($"document count {count}");
        var index = new MultiVectorIndex(dim);
        for (var d = 0; d < count; d++)
        {
            var idLength = Int();
            if (idLength < 0 || idLength > 1 << 20) throw Bad($"document {d}'s id length {idLength}");
            var id = Encoding.UTF8.GetString(Take(idLength));
            var tokens = Int();
            if (tokens <= 0 || (long)tokens * dim * 4 > bytes.Length - at) throw Bad($"document '{id}' has {tokens} vectors, more than the file holds");
            var data = new float[tokens * dim];
            Buffer.BlockCopy(bytes, at, data, 0, data.Length * 4);
            if (!BitConverter.IsLittleEndian) throw Bad("big-endian platforms are not supported");
            at += data.Length * 4;
            if (Array.FindIndex(data, v => !float.IsFinite(v)) >= 0) throw Bad($"document '{id}' has a non-finite value");
            if (!index._documents.TryAdd(id, data)) throw Bad($"document '{id}' appears twice");
        }
        if (Encoding.ASCII.GetString(Take(Magic.Length)) != Magic || at != bytes.Length) throw Bad("trailing bytes or a missing end signature");
        return index;
    }
}
