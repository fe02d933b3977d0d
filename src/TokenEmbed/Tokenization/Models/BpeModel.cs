using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>BPE</c> model (ported from tokenizers' <c>models/bpe/model.rs</c> and <c>word.rs</c>): a word
/// starts as one symbol per character (with <c>continuing_subword_prefix</c> on all but the first and
/// <c>end_of_word_suffix</c> on the last; a character missing from the vocabulary becomes its
/// <c>byte_fallback</c> tokens <c>&lt;0xXX&gt;</c>, else <c>unk_token</c>, fused when <c>fuse_unk</c>, else nothing),
/// then the applicable merge of lowest rank (leftmost among equals) is applied until none is left. With
/// <c>ignore_merges</c>, a word that is itself in the vocabulary is that token. Words of up to 256 chars are cached
/// (up to 10,000 of them, as Hugging Face does). Byte-level tokenizers get their words already mapped to the
/// byte alphabet by the <c>ByteLevel</c> pre-tokenizer. <c>dropout</c> is not supported (it makes ids random).
/// </summary>
internal sealed class BpeModel : TokenModel
{
    private const int CacheCapacity = 10_000;
    private const int MaxCachedWordLength = 256;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabLookup;
    private readonly string?[] _idToToken;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly string _prefix;
    private readonly string _suffix;
    private readonly int _unkId;
    private readonly bool _fuseUnk;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly int[]? _byteTokens;   // byte -> id of "<0xXX>", -1 when missing (byte_fallback only)
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _cacheLookup;
    private int _cacheCount;   // ConcurrentDictionary.Count takes every lock; this counts the entries added

    /// <param name="vocab">Token -> id.</param>
    /// <param name="merges">The merges in rank order (rank = index).</param>
    /// <param name="unkToken">The unknown token, or null to drop characters missing from the vocabulary.</param>
    /// <param name="continuingSubwordPrefix">Prefix of every symbol but a word's first, or null.</param>
    /// <param name="endOfWordSuffix">Suffix of a word's last symbol, or null.</param>
    /// <param name="fuseUnk">Whether consecutive unknown characters make one unknown token.</param>
    /// <param name="byteFallback">Whether unknown characters become their <c>&lt;0xXX&gt;</c> byte tokens.</param>
    /// <param name="ignoreMerges">Whether a word found whole in the vocabulary skips the merges.</param>
    /// <param name="filePath">The file, for errors.</param>
    public BpeModel(
        Dictionary<string, int> vocab,
        IReadOnlyList<(string Left, string Right)> merges,
        string? unkToken,
        string? continuingSubwordPrefix,
        string? endOfWordSuffix,
        bool fuseUnk,
        bool byteFallback,
        bool ignoreMerges,
        string filePath)
    {
        string file = Path.GetFileName(filePath);
        _vocab = vocab;
        _vocabLookup = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _cacheLookup = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        _prefix = continuingSubwordPrefix ?? "";
        _suffix = endOfWordSuffix ?? "";
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;

        _idToToken = BuildIdToToken(vocab, filePath);
        MaxId = _idToToken.Length - 1;

        _unkId = -1;
        if (unkToken is not null && !vocab.TryGetValue(unkToken, out _unkId))
            throw new ModelLoadException($"{file}: the BPE unknown token \"{unkToken}\" is not in the vocabulary ({filePath})", filePath);

        if (byteFallback)
        {
            _byteTokens = new int[256];
            for (int b = 0; b < 256; b++) _byteTokens[b] = vocab.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        }

        // (left id, right id) -> (rank, merged id); a repeated pair keeps its last rank, as Hugging Face's map does.
        _merges = new Dictionary<long, (int, int)>(merges.Count);
        int prefixLength = _prefix.Length;
        for (int rank = 0; rank < merges.Count; rank++)
        {
            var (left, right) = merges[rank];
            int leftId = vocab.TryGetValue(left, out int l) ? l : throw MergeOutOfVocabulary(rank, left);
            int rightId = vocab.TryGetValue(right, out int r) ? r : throw MergeOutOfVocabulary(rank, right);
            // The merged token drops the right part's prefix (Hugging Face slices it off by length).
            string merged = string.Concat(left, right.AsSpan(Math.Min(prefixLength, right.Length)));
            int newId = vocab.TryGetValue(merged, out int m) ? m : throw MergeOutOfVocabulary(rank, merged);
            _merges[Pair(leftId, rightId)] = (rank, newId);
        }

        ModelLoadException MergeOutOfVocabulary(int rank, string token) =>
            new($"{file}: merges[{rank}]: the token \"{token}\" is not in the BPE vocabulary ({filePath})", filePath);
    }

    public override int Count => _vocab.Count;

    public override int MaxId { get; }

    /// <summary>
    /// Reads a <c>BPE</c> model object: <c>vocab</c> (token → id), <c>merges</c> (<c>"a b"</c> strings or
    /// <c>["a", "b"]</c> pairs), <c>unk_token</c>, <c>continuing_subword_prefix</c>, <c>end_of_word_suffix</c>,
    /// <c>fuse_unk</c>, <c>byte_fallback</c>, <c>ignore_merges</c>; <c>dropout</c> must be null or 0.
    /// </summary>
    public static BpeModel FromBpeJson(JsonComponent json)
    {
        var vocab = ReadVocabulary(json);

        var merges = new List<(string, string)>();
        var mergesJson = json.Get("merges", JsonValueKind.Array);
        if (mergesJson is not null)
        {
            int i = 0;
            foreach (var item in mergesJson.Value.EnumerateArray())
            {
                string where = $"{json.Path}.merges[{i++}]";
                if (item.ValueKind == JsonValueKind.String)
                {
                    // Legacy "a b": exactly two parts.
                    string line = item.GetString()!;
                    int space = line.IndexOf(' ');
                    if (space < 0 || line.IndexOf(' ', space + 1) >= 0) throw json.Invalid($"{where} must be \"left right\" (one space)");
                    merges.Add((line[..space], line[(space + 1)..]));
                }
                else if (item.ValueKind == JsonValueKind.Array && item.GetArrayLength() == 2
                         && item[0].ValueKind == JsonValueKind.String && item[1].ValueKind == JsonValueKind.String)
                {
                    merges.Add((item[0].GetString()!, item[1].GetString()!));
                }
                else
                {
                    throw json.Invalid($"{where} must be a \"left right\" string or a [left, right] pair");
                }
            }
        }

        if (json.Get("dropout", JsonValueKind.Number) is JsonElement dropout && dropout.GetDouble() != 0)
            throw json.Invalid($"{json.Path}.dropout: BPE dropout is not supported (it makes tokenization random)");

        return new BpeModel(
            vocab,
            merges,
            json.GetString("unk_token"),
            json.GetString("continuing_subword_prefix"),
            json.GetString("end_of_word_suffix"),
            json.GetBool("fuse_unk", false),
            json.GetBool("byte_fallback", false),
            json.GetBool("ignore_merges", false),
            json.FilePath);
    }

    public override int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    public override void Tokenize(ReadOnlySpan<char> word, List<int> ids)
    {
        if (word.IsEmpty) return;
        if (_ignoreMerges && _vocabLookup.TryGetValue(word, out int whole))
        {
            ids.Add(whole);
            return;
        }
        if (_cacheLookup.TryGetValue(word, out int[]? cached))
        {
            ids.AddRange(cached);
            return;
        }
        var work = Work.Rent();
        try
        {
            Split(word, work);
            MergeAll(work);
            int start = ids.Count;
            var symbols = work.Symbols;
            for (int i = 0; i < symbols.Count; i++)
            {
                if (symbols[i].Length != 0) ids.Add(symbols[i].Id);
            }
            if (word.Length <= MaxCachedWordLength && Volatile.Read(ref _cacheCount) < CacheCapacity
                && _cacheLookup.TryAdd(word, CollectionsMarshal.AsSpan(ids)[start..].ToArray()))
                Interlocked.Increment(ref _cacheCount);
        }
        finally
        {
            Work.Return(work);
        }
    }

    private static long Pair(int left, int right) => ((long)left << 32) | (uint)right;

    // One symbol per character (Hugging Face merge_word).
    private void Split(ReadOnlySpan<char> word, Work work)
    {
        var symbols = work.Symbols;
        int unkId = -1, unkLength = 0;
        Span<char> scratch = stackalloc char[64];
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            ReadOnlySpan<char> c = word.Slice(i, width);
            bool isFirst = i == 0;
            i += width;
            bool isLast = i == word.Length;

            scoped ReadOnlySpan<char> s = c;
            char[]? rented = null;
            if ((!isFirst && _prefix.Length > 0) || (isLast && _suffix.Length > 0))
            {
                int length = (isFirst ? 0 : _prefix.Length) + width + (isLast ? _suffix.Length : 0);
                Span<char> buffer = length <= scratch.Length ? scratch : (rented = new char[length]);
                int n = 0;
                if (!isFirst) { _prefix.CopyTo(buffer); n = _prefix.Length; }
                c.CopyTo(buffer[n..]);
                n += width;
                if (isLast) { _suffix.CopyTo(buffer[n..]); n += _suffix.Length; }
                s = buffer[..n];
            }

            if (_vocabLookup.TryGetValue(s, out int id))
            {
                if (unkId >= 0) { Add(symbols, unkId, unkLength); unkId = -1; }
                Add(symbols, id, width);
                continue;
            }
            if (_byteFallback && TryAddBytes(s, symbols))
            {
                continue;
            }
            if (_unkId >= 0)
            {
                if (unkId >= 0 && _fuseUnk)
                {
                    unkLength += width;
                }
                else
                {
                    if (unkId >= 0) Add(symbols, unkId, unkLength);
                    unkId = _unkId;
                    unkLength = width;
                }
            }
        }
        if (unkId >= 0) Add(symbols, unkId, unkLength);
    }

    // Byte fallback: the symbol's UTF-8 bytes as <0xXX> tokens, when all of them are in the vocabulary.
    private bool TryAddBytes(ReadOnlySpan<char> s, List<Symbol> symbols)
    {
        Span<byte> bytes = stackalloc byte[256];
        int count = Encoding.UTF8.GetByteCount(s);
        if (count > bytes.Length) bytes = new byte[count];
        count = Encoding.UTF8.GetBytes(s, bytes);
        for (int b = 0; b < count; b++)
        {
            if (_byteTokens![bytes[b]] < 0) return false;
        }
        for (int b = 0; b < count; b++) Add(symbols, _byteTokens![bytes[b]], 1);
        return true;
    }

    private static void Add(List<Symbol> symbols, int id, int length)
    {
        int index = symbols.Count;
        symbols.Add(new Symbol(id, index - 1, -1, length));
        if (index > 0) CollectionsMarshal.AsSpan(symbols)[index - 1].Next = index;
    }

    // Hugging Face Word::merge_all without dropout: a queue of candidate merges ordered by (rank, position); stale
    // entries (a side already merged away, or the pair now merging into another token) are skipped.
    private void MergeAll(Work work)
    {
        var symbols = CollectionsMarshal.AsSpan(work.Symbols);
        var queue = work.Queue;
        for (int i = 0; i + 1 < symbols.Length; i++)
        {
            if (_merges.TryGetValue(Pair(symbols[i].Id, symbols[i + 1].Id), out var m)) queue.Enqueue((i, m.NewId), Priority(m.Rank, i));
        }
        while (queue.TryDequeue(out var top, out _))
        {
            ref var current = ref symbols[top.Pos];
            if (current.Length == 0 || current.Next < 0) continue;
            int nextPos = current.Next;
            var right = symbols[nextPos];
            if (!_merges.TryGetValue(Pair(current.Id, right.Id), out var target) || target.NewId != top.NewId) continue;

            current.Id = top.NewId;
            current.Length += right.Length;
            current.Next = right.Next;
            symbols[nextPos].Length = 0;
            if (right.Next >= 0) symbols[right.Next].Prev = top.Pos;

            if (current.Prev >= 0 && _merges.TryGetValue(Pair(symbols[current.Prev].Id, current.Id), out var before))
                queue.Enqueue((current.Prev, before.NewId), Priority(before.Rank, current.Prev));
            if (current.Next >= 0 && _merges.TryGetValue(Pair(current.Id, symbols[current.Next].Id), out var after))
                queue.Enqueue((top.Pos, after.NewId), Priority(after.Rank, top.Pos));
        }
    }

    private static long Priority(int rank, int pos) => ((long)rank << 32) | (uint)pos;

    private struct Symbol(int id, int prev, int next, int length)
    {
        public int Id = id;
        public int Prev = prev;
        public int Next = next;
        public int Length = length;   // 0 once merged into the symbol before it
    }

    /// <summary>Per-word working storage, cached per thread.</summary>
    private sealed class Work
    {
        [ThreadStatic]
        private static Work? t_cached;

        public List<Symbol> Symbols { get; } = new(64);

        public PriorityQueue<(int Pos, int NewId), long> Queue { get; } = new(64);

        public static Work Rent()
        {
            var work = t_cached ?? new Work();
            t_cached = null;
            return work;
        }

        public static void Return(Work work)
        {
            work.Symbols.Clear();
            work.Queue.Clear();
            if (work.Symbols.Capacity <= 1 << 16) t_cached = work;
        }
    }
}
