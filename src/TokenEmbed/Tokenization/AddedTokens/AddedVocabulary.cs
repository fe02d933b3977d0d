namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face's added vocabulary: assigns ids to the added tokens, and splits input text on them, honouring
/// <c>lstrip</c>, <c>rstrip</c>, <c>single_word</c> and <c>normalized</c> (tokens with <c>normalized: false</c> are
/// matched in the raw text, the others in the normalized pieces between those, against their normalized form).
/// </summary>
internal sealed class AddedVocabulary
{
    private readonly Dictionary<string, int> _tokenToId = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedTokenSpec> _idToToken = [];
    private readonly LiteralMatcher _raw;
    private readonly int[] _rawIds;
    private readonly LiteralMatcher _normalized;
    private readonly int[] _normalizedIds;

    /// <summary>A piece of text: a slice of the text that was split, with the added token's id or -1.</summary>
    public readonly record struct Segment(int Start, int Length, int Id);

    /// <summary>
    /// Registers <paramref name="tokens"/> as Hugging Face's <c>AddedVocabulary::add_tokens</c> does: the id is the
    /// model's id for that content when it has one, else the next free id after the model vocabulary.
    /// </summary>
    public AddedVocabulary(IReadOnlyList<AddedTokenSpec> tokens, TokenModel model, TextNormalizer? normalizer)
    {
        var specials = new List<AddedTokenSpec>();
        var specialSet = new HashSet<string>(StringComparer.Ordinal);
        foreach (var t in tokens)
        {
            if (t.Special && t.Content.Length > 0 && specialSet.Add(t.Content)) specials.Add(t);
        }

        int modelSize = model.Count;
        int maxAdded = -1;
        var classic = new List<AddedTokenSpec>();
        var seen = new HashSet<AddedTokenSpec>();   // same content and flags (the stated id aside) = already added
        foreach (var t in tokens)
        {
            if (t.Content.Length == 0 || !seen.Add(t with { Id = null })) continue;
            int id;
            if (_tokenToId.TryGetValue(t.Content, out int existing)) id = existing;
            else if (model.TokenToId(t.Content) is int modelId) id = modelId;
            else if (maxAdded < 0) id = modelSize;
            else id = maxAdded >= modelSize || modelSize == 0 ? maxAdded + 1 : modelSize;
            _tokenToId[t.Content] = id;
            _idToToken[id] = t;
            maxAdded = Math.Max(maxAdded, id);
            if (!specialSet.Contains(t.Content)) classic.Add(t);
        }

        // Matching sets: special tokens first, then the others, each in the order given.
        var rawPatterns = new List<string>();
        var rawIds = new List<int>();
        var normPatterns = new List<string>();
        var normIds = new List<int>();
        foreach (var t in specials.Concat(classic))
        {
            int id = _tokenToId[t.Content];
            if (t.Normalized)
            {
                normPatterns.Add(normalizer?.Normalize(t.Content) ?? t.Content);
                normIds.Add(id);
            }
            else
            {
                rawPatterns.Add(t.Content);
                rawIds.Add(id);
            }
        }
        _raw = new LiteralMatcher(rawPatterns);
        _rawIds = rawIds.ToArray();
        _normalized = new LiteralMatcher(normPatterns);
        _normalizedIds = normIds.ToArray();
        MaxId = _idToToken.Count == 0 ? -1 : _idToToken.Keys.Max();
    }

    /// <summary>The largest added-token id, or -1.</summary>
    public int MaxId { get; }

    /// <summary>Whether some tokens are matched in the raw (not normalized) text.</summary>
    public bool HasRawTokens => !_raw.IsEmpty;

    /// <summary>Whether some tokens are matched in the normalized text.</summary>
    public bool HasNormalizedTokens => !_normalized.IsEmpty;

    public int? TokenToId(string token) => _tokenToId.TryGetValue(token, out int id) ? id : null;

    public string? IdToToken(int id) => _idToToken.TryGetValue(id, out var t) ? t.Content : null;

    /// <summary>Splits raw text on the tokens matched before normalization.</summary>
    public void SplitRaw(ReadOnlySpan<char> text, List<Segment> output) => Split(text, _raw, _rawIds, output);

    /// <summary>Splits a normalized piece on the tokens matched after normalization.</summary>
    public void SplitNormalized(ReadOnlySpan<char> text, List<Segment> output) => Split(text, _normalized, _normalizedIds, output);

    // Hugging Face AddedVocabulary::find_matches, literally (segments may be empty; callers skip those).
    private void Split(ReadOnlySpan<char> text, LiteralMatcher matcher, int[] ids, List<Segment> output)
    {
        int startOffset = 0;
        int from = 0;
        while (matcher.FindNext(text, from, out int start, out int length, out int pattern))
        {
            int stop = start + length;
            from = stop;
            int id = ids[pattern];
            var token = _idToToken[id];
            if (token.SingleWord)
            {
                bool startSpace = start == 0 || !EndsWithWord(text[..start]);
                bool stopSpace = stop == text.Length || !StartsWithWord(text[stop..]);
                if (!startSpace || !stopSpace) continue;
            }
            if (token.Lstrip)
            {
                int newStart = start;
                while (newStart > 0)
                {
                    int cp = CodePointBefore(text, newStart, out int w);
                    if (!HfUnicode.IsWhitespace(cp)) break;
                    newStart -= w;
                }
                start = Math.Max(newStart, startOffset);
            }
            if (token.Rstrip)
            {
                while (stop < text.Length)
                {
                    int cp = HfUnicode.CodePointAt(text, stop, out int w);
                    if (!HfUnicode.IsWhitespace(cp)) break;
                    stop += w;
                }
            }
            if (startOffset < start) output.Add(new Segment(startOffset, start - startOffset, -1));
            output.Add(new Segment(start, stop - start, id));
            startOffset = stop;
        }
        if (startOffset < text.Length) output.Add(new Segment(startOffset, text.Length - startOffset, -1));
    }

    private static bool EndsWithWord(ReadOnlySpan<char> text) =>
        text.Length > 0 && HfUnicode.IsWordChar(CodePointBefore(text, text.Length, out _));

    private static bool StartsWithWord(ReadOnlySpan<char> text) =>
        text.Length > 0 && HfUnicode.IsWordChar(HfUnicode.CodePointAt(text, 0, out _));

    private static int CodePointBefore(ReadOnlySpan<char> text, int end, out int width)
    {
        char c = text[end - 1];
        if (char.IsLowSurrogate(c) && end >= 2 && char.IsHighSurrogate(text[end - 2]))
        {
            width = 2;
            return char.ConvertToUtf32(text[end - 2], c);
        }
        width = 1;
        return c;
    }
}
