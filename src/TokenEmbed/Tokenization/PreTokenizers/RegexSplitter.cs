using System.Globalization;
using System.Text.RegularExpressions;

namespace TokenEmbed.Tokenization;

/// <summary>What happens to the matches of a split pattern (Hugging Face <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    /// <summary>Matches are dropped.</summary>
    Removed,

    /// <summary>Each match is a word of its own.</summary>
    Isolated,

    /// <summary>A match is appended to the word before it.</summary>
    MergedWithPrevious,

    /// <summary>A match is prepended to the word after it.</summary>
    MergedWithNext,

    /// <summary>Consecutive matches form one word.</summary>
    Contiguous,
}

/// <summary>
/// Splits text with a regex as Hugging Face's <c>NormalizedString::split</c> does: the text is cut into the matches
/// and the gaps between them, the behavior decides what becomes of the matches, empty pieces are dropped.
/// <para>
/// .NET regexes see UTF-16 units, so a character outside the BMP (a surrogate pair) would match neither
/// <c>\p{L}</c> nor <c>\p{N}</c>, where the Rust engines see one code point of its category. When the text has such
/// characters (and the pattern itself none), the regex runs on a copy in which each becomes one BMP character of
/// the same Unicode category, and the matches are mapped back.
/// </para>
/// </summary>
internal sealed class RegexSplitter
{
    private readonly Regex _regex;
    private readonly SplitBehavior _behavior;
    private readonly bool _invert;
    private readonly bool _mapAstral;

    public RegexSplitter(Regex regex, SplitBehavior behavior, bool invert)
    {
        _regex = regex;
        _behavior = behavior;
        _invert = invert;
        _mapAstral = regex.ToString().AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') < 0;
    }

    /// <summary>Appends the non-empty pieces of <paramref name="text"/> to <paramref name="output"/>.</summary>
    public void Split(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> output)
    {
        if (text.IsEmpty) return;
        ReadOnlySpan<char> span = text.Span;
        int[]? origin = null;
        if (_mapAstral && span.IndexOfAnyInRange('\uD800', '\uDFFF') >= 0) span = MapAstral(span, out origin);

        if (_behavior == SplitBehavior.Isolated && !_invert)
        {
            // The common case: every match and every gap is a word.
            int prev = 0;
            foreach (var m in _regex.EnumerateMatches(span))
            {
                int start = At(origin, m.Index), end = At(origin, m.Index + m.Length);
                if (start > prev) output.Add(text[prev..start]);
                if (end > start) output.Add(text[start..end]);
                prev = Math.Max(prev, end);
            }
            if (prev < text.Length) output.Add(text[prev..]);
            return;
        }

        // (start, end, is the piece a match), covering the text.
        var pieces = new List<(int Start, int End, bool IsMatch)>();
        int last = 0;
        foreach (var m in _regex.EnumerateMatches(span))
        {
            int start = At(origin, m.Index), end = At(origin, m.Index + m.Length);
            if (last != start) pieces.Add((last, start, _invert));
            pieces.Add((start, end, !_invert));
            last = end;
        }
        if (last != text.Length) pieces.Add((last, text.Length, _invert));

        var splits = new List<(int Start, int End, bool Remove)>(pieces.Count);
        bool previousMatch = false;
        switch (_behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var p in pieces) splits.Add((p.Start, p.End, false));
                break;
            case SplitBehavior.Removed:
                foreach (var p in pieces) splits.Add((p.Start, p.End, p.IsMatch));
                break;
            case SplitBehavior.Contiguous:
                foreach (var p in pieces)
                {
                    if (p.IsMatch == previousMatch && splits.Count > 0) splits[^1] = (splits[^1].Start, p.End, false);
                    else splits.Add((p.Start, p.End, false));
                    previousMatch = p.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithPrevious:
                foreach (var p in pieces)
                {
                    if (p.IsMatch && !previousMatch && splits.Count > 0) splits[^1] = (splits[^1].Start, p.End, false);
                    else splits.Add((p.Start, p.End, false));
                    previousMatch = p.IsMatch;
                }
                break;
            case SplitBehavior.MergedWithNext:
                for (int i = pieces.Count - 1; i >= 0; i--)
                {
                    var p = pieces[i];
                    if (p.IsMatch && !previousMatch && splits.Count > 0) splits[^1] = (p.Start, splits[^1].End, false);
                    else splits.Add((p.Start, p.End, false));
                    previousMatch = p.IsMatch;
                }
                splits.Reverse();
                break;
        }
        foreach (var (start, end, remove) in splits)
        {
            if (!remove && end > start) output.Add(text[start..end]);
        }
    }

    private static int At(int[]? origin, int index) => origin is null ? index : origin[index];

    // Each surrogate pair becomes one BMP character of the same general category; origin[i] is the index in the
    // original text of mapped index i (origin has one more entry, for the end).
    private static ReadOnlySpan<char> MapAstral(ReadOnlySpan<char> text, out int[] origin)
    {
        var mapped = new char[text.Length];
        origin = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length;)
        {
            int cp = HfUnicode.CodePointAt(text, i, out int width);
            origin[n] = i;
            mapped[n++] = width == 1 ? (char)cp : CategoryStandIn(CharUnicodeInfo.GetUnicodeCategory(cp));
            i += width;
        }
        origin[n] = text.Length;
        return mapped.AsSpan(0, n);
    }

    // A BMP character of each category, chosen away from the ASCII letters and punctuation that patterns spell out.
    private static char CategoryStandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\u0531',        // Armenian capital AYB
        UnicodeCategory.LowercaseLetter => '\u0561',        // Armenian small AYB
        UnicodeCategory.TitlecaseLetter => '\u01C5',
        UnicodeCategory.ModifierLetter => '\u02B0',
        UnicodeCategory.OtherLetter => '\u05D0',            // Hebrew ALEF
        UnicodeCategory.NonSpacingMark => '\u0300',
        UnicodeCategory.SpacingCombiningMark => '\u0903',
        UnicodeCategory.EnclosingMark => '\u20DD',
        UnicodeCategory.DecimalDigitNumber => '\u0660',     // Arabic-Indic zero
        UnicodeCategory.LetterNumber => '\u16EE',           // Runic arlaug symbol
        UnicodeCategory.OtherNumber => '\u00B2',
        UnicodeCategory.ConnectorPunctuation => '\u203F',
        UnicodeCategory.DashPunctuation => '\u2010',
        UnicodeCategory.OpenPunctuation => '\u2045',
        UnicodeCategory.ClosePunctuation => '\u2046',
        UnicodeCategory.InitialQuotePunctuation => '\u00AB',
        UnicodeCategory.FinalQuotePunctuation => '\u00BB',
        UnicodeCategory.OtherPunctuation => '\u00B6',
        UnicodeCategory.MathSymbol => '\u00AC',
        UnicodeCategory.CurrencySymbol => '\u00A2',
        UnicodeCategory.ModifierSymbol => '\u00B4',
        UnicodeCategory.OtherSymbol => '\u00A6',
        UnicodeCategory.Format => '\u00AD',
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.SpaceSeparator => '\u3000',
        _ => '\u0378',                                      // unassigned
    };
}
