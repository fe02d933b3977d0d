using System.Text;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>BertNormalizer</c>: clean text (drop NUL, U+FFFD and "other" characters, map whitespace to a
/// space), surround CJK ideographs with spaces, strip accents (NFD, then drop non-spacing marks) and lowercase,
/// in that order. Runs in one or two passes over a pooled buffer.
/// </summary>
internal sealed class BertNormalizer : TextNormalizer
{
    private readonly bool _cleanText;
    private readonly bool _handleChineseChars;
    private readonly bool _stripAccents;
    private readonly bool _lowercase;

    public BertNormalizer(bool cleanText, bool handleChineseChars, bool stripAccents, bool lowercase)
    {
        _cleanText = cleanText;
        _handleChineseChars = handleChineseChars;
        _stripAccents = stripAccents;
        _lowercase = lowercase;
    }

    public override string Normalize(string text)
    {
        if (text.Length == 0) return text;
        if (Ascii.IsValid(text)) return NormalizeAscii(text);

        // Pass 1: clean text + CJK spacing (+ lowercase when no accent stripping follows: it is per character, so it
        // commutes with the rest).
        bool lowerInPass1 = _lowercase && !_stripAccents;
        var pass1 = new CharBuffer(text.Length + 16);
        var nfd = default(CharBuffer);
        var output = default(CharBuffer);
        try
        {
            ReadOnlySpan<char> span = text;
            for (int i = 0; i < span.Length;)
            {
                char c = span[i];
                if (c < 0x80)
                {
                    i++;
                    if (_cleanText && (c < ' ' || c == '\u007F'))
                    {
                        if (c is '\t' or '\n' or '\r') pass1.Append(' ');
                    }
                    else
                    {
                        pass1.Append(lowerInPass1 && (uint)(c - 'A') <= 'Z' - 'A' ? (char)(c | 0x20) : c);
                    }
                    continue;
                }
                int cp = HfUnicode.CodePointAt(span, i, out int width);
                i += width;
                if (_cleanText)
                {
                    if (cp is '\t' or '\n' or '\r')
                    {
                        cp = ' ';
                    }
                    else if (cp == 0 || cp == 0xFFFD || HfUnicode.IsOther(cp))
                    {
                        continue;
                    }
                    else if (HfUnicode.IsWhitespace(cp))
                    {
                        cp = ' ';
                    }
                }
                if (_handleChineseChars && cp >= 0x3400 && HfUnicode.IsChineseChar(cp))
                {
                    pass1.Append(' ');
                    pass1.AppendCodePoint(cp);
                    pass1.Append(' ');
                }
                else if (lowerInPass1)
                {
                    HfUnicode.AppendLower(ref pass1, cp);
                }
                else
                {
                    pass1.AppendCodePoint(cp);
                }
            }
            if (!_stripAccents) return pass1.Span.SequenceEqual(text) ? text : pass1.ToString();

            // Pass 2: NFD, drop non-spacing marks, lowercase.
            ReadOnlySpan<char> decomposed = pass1.Span;
            nfd = new CharBuffer(decomposed.Length + 16);
            if (HfUnicode.NormalizeInto(decomposed, NormalizationForm.FormD, ref nfd)) decomposed = nfd.Span;
            output = new CharBuffer(decomposed.Length);
            for (int i = 0; i < decomposed.Length;)
            {
                char c = decomposed[i];
                if (c < 0x80)
                {
                    output.Append(_lowercase && (uint)(c - 'A') <= 'Z' - 'A' ? (char)(c | 0x20) : c);
                    i++;
                    continue;
                }
                int cp = HfUnicode.CodePointAt(decomposed, i, out int width);
                i += width;
                if (HfUnicode.IsMarkNonspacing(cp)) continue;
                if (_lowercase) HfUnicode.AppendLower(ref output, cp);
                else output.AppendCodePoint(cp);
            }
            return output.Span.SequenceEqual(text) ? text : output.ToString();
        }
        finally
        {
            pass1.Dispose();
            nfd.Dispose();
            output.Dispose();
        }
    }

    // ASCII text: no CJK, nothing to decompose or strip; only controls and case change.
    private string NormalizeAscii(string text)
    {
        ReadOnlySpan<char> span = text;
        bool hasControls = span.IndexOfAnyInRange('\0', '\u001F') >= 0 || span.Contains('\u007F');
        if (!hasControls || !_cleanText) return _lowercase ? text.ToLowerInvariant() : text;

        var buffer = new CharBuffer(text.Length);
        try
        {
            foreach (char c in span)
            {
                if (c < ' ')
                {
                    if (c is '\t' or '\n' or '\r') buffer.Append(' ');
                }
                else if (c == '\u007F')
                {
                }
                else
                {
                    buffer.Append(_lowercase && (uint)(c - 'A') <= 'Z' - 'A' ? (char)(c | 0x20) : c);
                }
            }
            return buffer.ToString();
        }
        finally
        {
            buffer.Dispose();
        }
    }
}
