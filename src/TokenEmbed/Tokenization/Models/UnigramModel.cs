// Ports the behaviour of Hugging Face tokenizers' models/unigram/model.rs (Unigram::from, encode_optimized,
// Model::tokenize), written from its documented behaviour, not copied.
using System.Buffers;
using System.Text;
using System.Text.Json;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>Unigram</c> model (SentencePiece unigram language model): the segmentation of a word that
/// maximises the sum of the pieces' log-probabilities (Viterbi over a trie of the pieces). A code point that no
/// single-character piece covers may be taken as <c>unk</c> at <c>min_score - 10</c>; consecutive unknown
/// characters are fused into one token, which is then looked up as a whole (usually giving <c>unk_id</c>, or with
/// <c>byte_fallback</c> the <c>&lt;0xXX&gt;</c> byte pieces when all of them exist).
/// </summary>
internal sealed class UnigramModel : TokenModel
{
    private const double UnkPenalty = 10.0;

    private readonly string[] _pieces;
    private readonly double[] _scores;
    private readonly Dictionary<string, int> _tokenToId;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _spanLookup;
    private readonly PieceTrie _trie;
    private readonly int? _unkId;
    private readonly double _unkScore;
    private readonly int[]? _byteIds;   // <0xXX> ids when byte_fallback is on and all 256 exist

    public UnigramModel(IReadOnlyList<(string Piece, double Score)> vocab, int? unkId, bool byteFallback, string filePath)
    {
        string file = Path.GetFileName(filePath);
        if (vocab.Count == 0) throw new ModelLoadException($"{file}: the Unigram vocabulary is empty ({filePath})", filePath);
        if (unkId is int u && (u < 0 || u >= vocab.Count))
            throw new ModelLoadException($"{file}: model.unk_id {u} is outside the Unigram vocabulary of {vocab.Count} pieces ({filePath})", filePath);

        _pieces = new string[vocab.Count];
        _scores = new double[vocab.Count];
        _tokenToId = new Dictionary<string, int>(vocab.Count, StringComparer.Ordinal);
        double minScore = double.PositiveInfinity;
        for (int id = 0; id < vocab.Count; id++)
        {
            var (piece, score) = vocab[id];
            _pieces[id] = piece;
            _scores[id] = score;
            _tokenToId[piece] = id;   // a later duplicate wins, as in Hugging Face
            if (score < minScore) minScore = score;
        }
        _spanLookup = _tokenToId.GetAlternateLookup<ReadOnlySpan<char>>();
        _unkId = unkId;
        _unkScore = minScore - UnkPenalty;
        _trie = new PieceTrie(_tokenToId);

        if (byteFallback)
        {
            // Hugging Face falls back to bytes only when every byte of the unknown text has a piece; a model
            // missing any of the 256 can still fall back for some texts, so keep -1 holes.
            _byteIds = new int[256];
            for (int b = 0; b < 256; b++) _byteIds[b] = _tokenToId.TryGetValue($"<0x{b:X2}>", out int id) ? id : -1;
        }
    }

    public override int Count => _pieces.Length;

    public override int MaxId => _pieces.Length - 1;

    /// <summary>Reads a <c>model</c> object: <c>vocab</c> (an array of <c>[piece, score]</c>), <c>unk_id</c>, <c>byte_fallback</c>.</summary>
    public static UnigramModel FromUnigramJson(JsonComponent json)
    {
        var vocabJson = json.Get("vocab", JsonValueKind.Array) ?? throw json.Invalid($"{json.Path}.vocab is missing");
        var vocab = new List<(string, double)>(vocabJson.GetArrayLength());
        int i = 0;
        foreach (var item in vocabJson.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Array || item.GetArrayLength() != 2
                || item[0].ValueKind != JsonValueKind.String || item[1].ValueKind != JsonValueKind.Number
                || !item[1].TryGetDouble(out double score))
                throw json.Invalid($"{json.Path}.vocab[{i}] must be [piece, score]");
            vocab.Add((item[0].GetString()!, score));
            i++;
        }
        int? unkId = json.GetInt("unk_id");
        return new UnigramModel(vocab, unkId, json.GetBool("byte_fallback", false), json.FilePath);
    }

    public override int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    public override string? IdToToken(int id) => (uint)id < (uint)_pieces.Length ? _pieces[id] : null;

    public override void Tokenize(ReadOnlySpan<char> word, List<int> ids)
    {
        int n = word.Length;
        double[] scores = ArrayPool<double>.Shared.Rent(n + 1);
        int[] starts = ArrayPool<int>.Shared.Rent(n + 1);   // start of the best last token ending here, -1 = unreached
        int[] tokenIds = ArrayPool<int>.Shared.Rent(n + 1);  // its piece id, or -1 for unk
        try
        {
            Viterbi(word, scores, starts, tokenIds);
            Emit(word, starts, tokenIds, ids);
        }
        finally
        {
            ArrayPool<double>.Shared.Return(scores);
            ArrayPool<int>.Shared.Return(starts);
            ArrayPool<int>.Shared.Return(tokenIds);
        }
    }

    // Hugging Face encode_optimized, over UTF-16 positions (pieces are whole strings, so matches end on the same
    // code point boundaries as its UTF-8 ones, and in the same shortest-first order).
    private void Viterbi(ReadOnlySpan<char> word, double[] scores, int[] starts, int[] tokenIds)
    {
        int n = word.Length;
        scores[0] = 0;
        for (int i = 0; i <= n; i++) starts[i] = -1;
        for (int start = 0; start < n;)
        {
            double here = scores[start];
            int charLength = char.IsHighSurrogate(word[start]) && start + 1 < n && char.IsLowSurrogate(word[start + 1]) ? 2 : 1;
            bool hasSingleNode = false;
            int node = PieceTrie.Root;
            for (int end = start; end < n;)
            {
                node = _trie.Child(node, word[end]);
                if (node < 0) break;
                end++;
                int id = _trie.PieceId(node);
                if (id < 0) continue;
                // A piece ending inside a surrogate pair (only possible with lone surrogates in the vocabulary) is not a match.
                if (end < n && char.IsLowSurrogate(word[end]) && char.IsHighSurrogate(word[end - 1])) continue;
                double candidate = _scores[id] + here;
                if (starts[end] < 0 || candidate > scores[end])
                {
                    scores[end] = candidate;
                    starts[end] = start;
                    tokenIds[end] = id;
                }
                if (end - start == charLength) hasSingleNode = true;
            }
            if (!hasSingleNode)
            {
                int end = start + charLength;
                double candidate = _unkScore + here;
                if (starts[end] < 0 || candidate > scores[end])
                {
                    scores[end] = candidate;
                    starts[end] = start;
                    tokenIds[end] = -1;
                }
            }
            start += charLength;
        }
    }

    // Walks the best path back; runs of unk tokens are fused and the fused text is looked up as a token.
    private void Emit(ReadOnlySpan<char> word, int[] starts, int[] tokenIds, List<int> ids)
    {
        int first = ids.Count;
        int end = word.Length;
        int unkEnd = -1;   // end of the unk run being fused, or -1
        while (end > 0)
        {
            int start = starts[end];
            int id = tokenIds[end];
            // The Viterbi unk and a piece whose id is unk_id are the same thing to Hugging Face (both fuse).
            bool isUnk = id < 0 || id == _unkId;
            if (isUnk)
            {
                if (unkEnd < 0) unkEnd = end;
            }
            else
            {
                if (unkEnd >= 0)
                {
                    AddUnknown(word[end..unkEnd], ids);
                    unkEnd = -1;
                }
                ids.Add(id);
            }
            end = start;
        }
        if (unkEnd >= 0) AddUnknown(word[..unkEnd], ids);
        ids.Reverse(first, ids.Count - first);
    }

    // Appends (in reverse order, like the rest of Emit) the ids of a fused run of unknown text.
    private void AddUnknown(ReadOnlySpan<char> text, List<int> ids)
    {
        if (_spanLookup.TryGetValue(text, out int id))
        {
            ids.Add(id);
            return;
        }
        if (_byteIds is not null && TryAddBytes(text, ids)) return;
        // Hugging Face fails the same way (MissingUnkId).
        ids.Add(_unkId ?? throw new ArgumentException(
            $"The text contains \"{text}\", which the Unigram model cannot tokenize and it has no unk_id.", nameof(text)));
    }

    private bool TryAddBytes(ReadOnlySpan<char> text, List<int> ids)
    {
        int count = Encoding.UTF8.GetByteCount(text);
        byte[] rented = ArrayPool<byte>.Shared.Rent(count);
        try
        {
            int written = Encoding.UTF8.GetBytes(text, rented);
            for (int i = 0; i < written; i++)
            {
                if (_byteIds![rented[i]] < 0) return false;
            }
            for (int i = written - 1; i >= 0; i--) ids.Add(_byteIds![rented[i]]);
            return true;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// A character trie of the pieces, stored breadth-first so that the children of a node are contiguous and
    /// sorted by character (binary search); compact enough for 250k-piece vocabularies.
    /// </summary>
    private sealed class PieceTrie
    {
        public const int Root = 0;

        private readonly char[] _labels;        // character on the edge into each node
        private readonly int[] _firstChild;     // children of node k: [_firstChild[k], _firstChild[k + 1])
        private readonly int[] _pieceIds;       // piece ending at each node, or -1

        public PieceTrie(Dictionary<string, int> pieces)
        {
            var sorted = pieces.Keys.Where(p => p.Length > 0).ToArray();
            Array.Sort(sorted, StringComparer.Ordinal);
            var labels = new List<char> { '\0' };
            var pieceIds = new List<int> { -1 };
            var firstChild = new List<int>();
            // Node k covers sorted[lo..hi) (all sharing a prefix of length depth); nodes are expanded in index order.
            var ranges = new List<(int Lo, int Hi, int Depth)> { (0, sorted.Length, 0) };
            for (int k = 0; k < ranges.Count; k++)
            {
                var (lo, hi, depth) = ranges[k];
                firstChild.Add(labels.Count);
                int i = lo;
                if (i < hi && sorted[i].Length == depth) i++;   // the piece ending here (sorted first)
                while (i < hi)
                {
                    char c = sorted[i][depth];
                    int j = i + 1;
                    while (j < hi && sorted[j][depth] == c) j++;
                    labels.Add(c);
                    pieceIds.Add(sorted[i].Length == depth + 1 ? pieces[sorted[i]] : -1);
                    ranges.Add((i, j, depth + 1));
                    i = j;
                }
            }
            firstChild.Add(labels.Count);
            _labels = labels.ToArray();
            _pieceIds = pieceIds.ToArray();
            _firstChild = firstChild.ToArray();
        }

        public int PieceId(int node) => _pieceIds[node];

        /// <summary>The child of <paramref name="node"/> along <paramref name="c"/>, or -1.</summary>
        public int Child(int node, char c)
        {
            int lo = _firstChild[node], hi = _firstChild[node + 1] - 1;
            while (lo <= hi)
            {
                int mid = (lo + hi) >>> 1;
                char m = _labels[mid];
                if (m == c) return mid;
                if (m < c) lo = mid + 1;
                else hi = mid - 1;
            }
            return -1;
        }
    }
}
