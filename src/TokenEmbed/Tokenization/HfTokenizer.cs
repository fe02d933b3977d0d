using System.Runtime.InteropServices;

namespace TokenEmbed.Tokenization;

/// <summary>
/// The Hugging Face tokenization pipeline for one sequence: added tokens matched in the raw text, normalizer,
/// added tokens matched in the normalized text, pre-tokenizer, model, post-processor. Immutable and thread-safe.
/// </summary>
internal sealed class HfTokenizer : TextTokenizer
{
    private readonly TextNormalizer? _normalizer;
    private readonly TextPreTokenizer? _preTokenizer;
    private readonly TokenModel _model;
    private readonly AddedVocabulary _added;
    private readonly PostProcessor? _postProcessor;

    public HfTokenizer(
        TextNormalizer? normalizer,
        TextPreTokenizer? preTokenizer,
        TokenModel model,
        IReadOnlyList<AddedTokenSpec> addedTokens,
        PostProcessor? postProcessor,
        Func<HfTokenizer, int?> padTokenId)
    {
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _postProcessor = postProcessor;
        _added = new AddedVocabulary(addedTokens, model, normalizer);
        VocabSize = Math.Max(model.MaxId, _added.MaxId) + 1;
        PadTokenId = padTokenId(this);
    }

    public override int NumSpecialTokensToAdd => _postProcessor?.NumSpecialTokensToAdd ?? 0;

    public override int? PadTokenId { get; }

    public override int VocabSize { get; }

    public override int? TokenToId(string token) => _added.TokenToId(token) ?? _model.TokenToId(token);

    public override string? IdToToken(int id) => _added.IdToToken(id) ?? _model.IdToToken(id);

    public override int[] ApplyPostProcessor(ReadOnlySpan<int> ids) => _postProcessor?.Apply(ids) ?? ids.ToArray();

    public override int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        text = HfUnicode.ReplaceLoneSurrogates(text);
        var state = EncodeState.Rent();
        try
        {
            Encode(text, state);
            return addSpecialTokens && _postProcessor is not null
                ? _postProcessor.Apply(CollectionsMarshal.AsSpan(state.Ids))
                : state.Ids.ToArray();
        }
        finally
        {
            EncodeState.Return(state);
        }
    }

    private void Encode(string text, EncodeState state)
    {
        if (_added.HasRawTokens)
        {
            var segments = state.RawSegments;
            _added.SplitRaw(text, segments);
            foreach (var s in segments)
            {
                if (s.Length == 0) continue;
                if (s.Id >= 0) state.Ids.Add(s.Id);
                else EncodeRawPiece(s.Start == 0 && s.Length == text.Length ? text : text.Substring(s.Start, s.Length), s.Start == 0, state);
            }
        }
        else if (text.Length > 0)
        {
            EncodeRawPiece(text, atInputStart: true, state);
        }
    }

    private void EncodeRawPiece(string piece, bool atInputStart, EncodeState state)
    {
        string normalized = _normalizer?.Normalize(piece) ?? piece;
        if (normalized.Length == 0) return;
        if (!_added.HasNormalizedTokens)
        {
            EncodeWords(normalized.AsMemory(), atInputStart, state);
            return;
        }
        var segments = state.NormalizedSegments;
        segments.Clear();
        _added.SplitNormalized(normalized, segments);
        foreach (var s in segments)
        {
            if (s.Length == 0) continue;
            if (s.Id >= 0) state.Ids.Add(s.Id);
            else EncodeWords(normalized.AsMemory(s.Start, s.Length), atInputStart && s.Start == 0, state);
        }
    }

    private void EncodeWords(ReadOnlyMemory<char> text, bool atInputStart, EncodeState state)
    {
        if (_preTokenizer is null)
        {
            _model.Tokenize(text.Span, state.Ids);
            return;
        }
        var words = state.Words;
        words.Clear();
        _preTokenizer.PreTokenize(text, words, atInputStart);
        _model.TokenizeWords(text, words, state.Ids);
    }

    /// <summary>Per-call working lists, cached per thread (an encode never re-enters another on the same thread).</summary>
    private sealed class EncodeState
    {
        private const int MaxCachedCapacity = 1 << 16;

        [ThreadStatic]
        private static EncodeState? t_cached;

        public List<int> Ids { get; } = new(256);

        public List<ReadOnlyMemory<char>> Words { get; } = new(256);

        public List<AddedVocabulary.Segment> RawSegments { get; } = [];

        public List<AddedVocabulary.Segment> NormalizedSegments { get; } = [];

        public static EncodeState Rent()
        {
            var state = t_cached ?? new EncodeState();
            t_cached = null;
            return state;
        }

        public static void Return(EncodeState state)
        {
            state.Ids.Clear();
            state.Words.Clear();
            state.RawSegments.Clear();
            state.NormalizedSegments.Clear();
            if (state.Ids.Capacity <= MaxCachedCapacity && state.Words.Capacity <= MaxCachedCapacity) t_cached = state;
        }
    }
}
