using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>WordPiece</c> model on top of Microsoft.ML.Tokenizers' <see cref="WordPieceTokenizer"/>
/// (greedy longest-match-first with a continuing-subword prefix; a word with an unmatchable piece becomes the
/// unknown token). Two Hugging Face details are handled here: the word-length limit counts code points, not
/// UTF-16 units, and any vocabulary (holes, shared ids, duplicate lines) is accepted by handing the
/// Microsoft.ML tokenizer a dense copy and mapping its ids back.
/// </summary>
internal sealed class WordPieceModel : TokenModel
{
    private readonly WordPieceTokenizer _tokenizer;
    private readonly Dictionary<string, int> _vocab;
    private readonly string?[] _idToToken;
    private readonly int[] _denseToId;   // Microsoft.ML id (line number) -> our id
    private readonly int _unkId;
    private readonly int _maxInputCharsPerWord;

    public WordPieceModel(Dictionary<string, int> vocab, string unkToken, string continuingSubwordPrefix, int maxInputCharsPerWord, string filePath)
    {
        _vocab = vocab;
        if (!vocab.TryGetValue(unkToken, out _unkId))
            throw new ModelLoadException($"{Path.GetFileName(filePath)}: the WordPiece unknown token \"{unkToken}\" is not in the vocabulary ({filePath})", filePath);
        if (maxInputCharsPerWord <= 0)
            throw new ModelLoadException($"{Path.GetFileName(filePath)}: max_input_chars_per_word must be positive ({filePath})", filePath);
        _maxInputCharsPerWord = maxInputCharsPerWord;

        _idToToken = BuildIdToToken(vocab, filePath);
        MaxId = _idToToken.Length - 1;

        // Dense vocabulary for Microsoft.ML (one token per line, id = line number). Tokens it cannot hold as a line
        // (empty, or containing a line break) can never be produced by WordPiece over pre-tokenized words anyway.
        // The first line stays empty (Microsoft.ML skips it) so that a first token starting with U+FEFF is not read
        // as a byte order mark.
        var lines = new StringBuilder(vocab.Count * 8).Append('\n');
        var denseToId = new List<int>(vocab.Count + 1) { -1 };
        foreach (var (token, id) in vocab.OrderBy(kv => kv.Value).ThenBy(kv => kv.Key, StringComparer.Ordinal))
        {
            if (token.Length == 0 || token.AsSpan().IndexOfAny('\r', '\n') >= 0) continue;
            denseToId.Add(id);
            lines.Append(token).Append('\n');
        }
        _denseToId = denseToId.ToArray();

        using var stream = new MemoryStream(new UTF8Encoding(false).GetBytes(lines.ToString()));
        try
        {
            _tokenizer = WordPieceTokenizer.Create(stream, new WordPieceOptions
            {
                UnknownToken = unkToken,
                ContinuingSubwordPrefix = continuingSubwordPrefix,
                // Hugging Face limits code points; we check that ourselves, so Microsoft.ML (which counts UTF-16 units)
                // must accept any word of up to twice as many units.
                MaxInputCharsPerWord = (int)Math.Min(2L * maxInputCharsPerWord, 1 << 20),
                PreTokenizer = PrecomputedSplits.Instance,
            });
        }
        catch (ArgumentException e)
        {
            throw new ModelLoadException($"{Path.GetFileName(filePath)}: invalid WordPiece vocabulary: {e.Message} ({filePath})", filePath, null, e);
        }
    }

    public override int MaxId { get; }

    public override int Count => _vocab.Count;

    public static WordPieceModel FromWordPieceJson(JsonComponent json)
    {
        var vocab = ReadVocabulary(json);
        return new WordPieceModel(
            vocab,
            json.GetString("unk_token") ?? "[UNK]",
            json.GetString("continuing_subword_prefix") ?? "##",
            json.GetInt("max_input_chars_per_word") ?? 100,
            json.FilePath);
    }

    /// <summary>
    /// Reads a BERT <c>vocab.txt</c> as transformers does: one token per line (universal newlines), id = line
    /// index, a later duplicate line wins.
    /// </summary>
    public static Dictionary<string, int> ReadVocabTxt(string filePath)
    {
        string text;
        try
        {
            text = File.ReadAllText(filePath, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException($"cannot read {Path.GetFileName(filePath)}: {e.Message} ({filePath})", filePath, null, e);
        }
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        int index = 0, start = 0;
        while (start < text.Length)
        {
            int end = text.AsSpan(start).IndexOfAny('\r', '\n');
            if (end < 0)
            {
                vocab[text[start..]] = index;
                break;
            }
            end += start;
            vocab[text[start..end]] = index++;
            start = end + (text[end] == '\r' && end + 1 < text.Length && text[end + 1] == '\n' ? 2 : 1);
        }
        return vocab;
    }

    public override void Tokenize(ReadOnlySpan<char> word, List<int> ids)
    {
        if (word.Length > _maxInputCharsPerWord && CountCodePoints(word) > _maxInputCharsPerWord)
        {
            ids.Add(_unkId);
            return;
        }
        var result = _tokenizer.EncodeToIds(word, considerPreTokenization: false, considerNormalization: false);
        int[] map = _denseToId;
        for (int i = 0; i < result.Count; i++) ids.Add(map[result[i]]);
    }

    /// <summary>
    /// All the words in one Microsoft.ML call (instead of one call, and one result list, per word): the words'
    /// offsets in <paramref name="text"/> are handed to it through <see cref="PrecomputedSplits"/>.
    /// </summary>
    public override void TokenizeWords(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words, List<int> ids)
    {
        if (!MemoryMarshal.TryGetString(text, out string? source, out int textStart, out _))
        {
            base.TokenizeWords(text, words, ids);
            return;
        }
        var splits = PrecomputedSplits.Rent();
        try
        {
            foreach (var word in words)
            {
                if (word.IsEmpty) continue;
                if (!MemoryMarshal.TryGetString(word, out string? wordSource, out int wordStart, out int wordLength)
                    || !ReferenceEquals(wordSource, source) || wordStart < textStart || wordStart + wordLength > textStart + text.Length)
                {
                    // Not a slice of text: tokenize it on its own.
                    Flush(text.Span, splits, ids);
                    Tokenize(word.Span, ids);
                }
                else if (wordLength > _maxInputCharsPerWord && CountCodePoints(word.Span) > _maxInputCharsPerWord)
                {
                    Flush(text.Span, splits, ids);
                    ids.Add(_unkId);
                }
                else
                {
                    splits.Add((wordStart - textStart, wordLength));
                }
            }
            Flush(text.Span, splits, ids);
        }
        finally
        {
            PrecomputedSplits.Return(splits);
        }
    }

    public override int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    public override string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    private void Flush(ReadOnlySpan<char> text, List<(int Offset, int Length)> splits, List<int> ids)
    {
        if (splits.Count == 0) return;
        IReadOnlyList<int> result;
        PrecomputedSplits.Current = splits;
        try
        {
            result = _tokenizer.EncodeToIds(text, considerPreTokenization: true, considerNormalization: false);
        }
        finally
        {
            PrecomputedSplits.Current = null;
        }
        splits.Clear();
        int[] map = _denseToId;
        for (int i = 0; i < result.Count; i++) ids.Add(map[result[i]]);
    }

    private static int CountCodePoints(ReadOnlySpan<char> word)
    {
        int n = word.Length;
        int i = word.IndexOfAnyInRange('\uDC00', '\uDFFF');
        if (i < 0) return n;
        for (; i < word.Length; i++)
        {
            if (i > 0 && char.IsLowSurrogate(word[i]) && char.IsHighSurrogate(word[i - 1])) n--;
        }
        return n;
    }

    /// <summary>
    /// The Microsoft.ML pre-tokenizer of <see cref="WordPieceModel"/>: returns the word offsets the calling thread
    /// computed with the Hugging Face pre-tokenizer just before the call.
    /// </summary>
    private sealed class PrecomputedSplits : PreTokenizer
    {
        public static readonly PrecomputedSplits Instance = new();

        [ThreadStatic]
        private static List<(int Offset, int Length)>? t_current;

        [ThreadStatic]
        private static List<(int Offset, int Length)>? t_spare;

        public static List<(int Offset, int Length)>? Current
        {
            get => t_current;
            set => t_current = value;
        }

        public static List<(int Offset, int Length)> Rent()
        {
            var list = t_spare ?? new List<(int Offset, int Length)>(64);
            t_spare = null;
            return list;
        }

        public static void Return(List<(int Offset, int Length)> list)
        {
            list.Clear();
            if (list.Capacity <= 1 << 16) t_spare = list;
        }

        public override IEnumerable<(int Offset, int Length)> PreTokenize(string text) => PreTokenize(text.AsSpan());

        public override IEnumerable<(int Offset, int Length)> PreTokenize(ReadOnlySpan<char> text) =>
            t_current ?? throw new InvalidOperationException("WordPiece pre-tokenizer called without precomputed splits.");
    }
}
