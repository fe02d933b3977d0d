using System.Buffers;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Finds literal patterns in text with leftmost-longest, non-overlapping semantics (as Aho-Corasick's
/// <c>MatchKind::LeftmostLongest</c> iterator in Hugging Face tokenizers): the match starting earliest wins,
/// the longest pattern among those starting there, and the search resumes after it.
/// </summary>
internal sealed class LiteralMatcher
{
    private readonly SearchValues<char> _firstChars;
    private readonly Dictionary<char, (string Pattern, int Index)[]> _byFirstChar;
    private readonly Dictionary<char, SearchValues<char>?> _secondChars;   // null when a one-char pattern starts there

    /// <param name="patterns">Non-empty patterns; a match reports the index of its pattern in this list.</param>
    public LiteralMatcher(IReadOnlyList<string> patterns)
    {
        var groups = new Dictionary<char, List<(string, int)>>();
        for (int i = 0; i < patterns.Count; i++)
        {
            string p = patterns[i];
            if (p.Length == 0) continue;
            if (!groups.TryGetValue(p[0], out var list)) groups[p[0]] = list = [];
            list.Add((p, i));
        }
        // Longest first; among equal patterns, the first one given wins.
        _byFirstChar = groups.ToDictionary(
            g => g.Key,
            g => g.Value.OrderByDescending(x => x.Item1.Length).ThenBy(x => x.Item2).ToArray());
        // The characters that can follow each first character (many patterns, e.g. runs of spaces, share a first
        // character that is common in text: most occurrences are rejected by this one test).
        _secondChars = _byFirstChar.ToDictionary(
            g => g.Key,
            g => g.Value.Any(x => x.Pattern.Length == 1) ? null : SearchValues.Create(g.Value.Select(x => x.Pattern[1]).Distinct().ToArray()));
        _firstChars = SearchValues.Create(groups.Keys.ToArray());
        IsEmpty = groups.Count == 0;
    }

    /// <summary>True when there is nothing to match.</summary>
    public bool IsEmpty { get; }

    /// <summary>The first match at or after <paramref name="from"/>: its start, length and pattern index, or false.</summary>
    public bool FindNext(ReadOnlySpan<char> text, int from, out int start, out int length, out int patternIndex)
    {
        while (from < text.Length)
        {
            int i = text[from..].IndexOfAny(_firstChars);
            if (i < 0) break;
            i += from;
            char first = text[i];
            if (_secondChars[first] is { } second && (i + 1 >= text.Length || !second.Contains(text[i + 1])))
            {
                from = i + 1;
                continue;
            }
            var candidates = _byFirstChar[first];
            ReadOnlySpan<char> rest = text[i..];
            foreach (var (pattern, index) in candidates)
            {
                if (rest.StartsWith(pattern, StringComparison.Ordinal))
                {
                    start = i;
                    length = pattern.Length;
                    patternIndex = index;
                    return true;
                }
            }
            from = i + 1;
        }
        start = length = patternIndex = -1;
        return false;
    }
}
