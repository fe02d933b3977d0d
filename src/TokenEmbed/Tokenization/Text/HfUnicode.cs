using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Character classes, lowercasing and Unicode normalization exactly as Hugging Face <c>tokenizers</c> (Rust) computes
/// them, so that normalizers and pre-tokenizers reproduce its output for every code point: Rust's
/// <c>char::is_whitespace</c> and <c>char::to_lowercase</c>, the (Unicode 8.0) tables of the <c>unicode_categories</c>
/// crate for "other", punctuation and non-spacing marks, and the exceptions where .NET's newer or older Unicode data
/// differs (see <see cref="HfUnicodeTables"/>). The BMP part of each class is expanded once into a bitmap; astral
/// code points use a binary search.
/// </summary>
internal static class HfUnicode
{
    private static readonly ulong[] OtherBmp = BuildBmpBitmap(HfUnicodeTables.Other);
    private static readonly ulong[] PunctuationBmp = BuildBmpBitmap(HfUnicodeTables.Punctuation);
    private static readonly ulong[] MarkNonspacingBmp = BuildBmpBitmap(HfUnicodeTables.MarkNonspacing);

    /// <summary>Rust <c>char::is_whitespace</c> (Unicode White_Space); the same set as .NET's.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsWhitespace(int cp) => cp < 0x80
        ? cp == ' ' || (uint)(cp - '\t') <= '\r' - '\t'
        : cp <= 0xFFFF && char.IsWhiteSpace((char)cp);

    /// <summary>What BertNormalizer's <c>clean_text</c> drops as control: Cc, Cf (Unicode 8.0) and Co; not Cn.</summary>
    public static bool IsOther(int cp) => cp < 0x80 ? cp < 0x20 || cp == 0x7F : Lookup(cp, OtherBmp, HfUnicodeTables.Other);

    /// <summary><c>unicode_categories</c> <c>is_punctuation()</c> (P*).</summary>
    public static bool IsPunctuation(int cp) => Lookup(cp, PunctuationBmp, HfUnicodeTables.Punctuation);

    /// <summary><c>unicode_categories</c> <c>is_mark_nonspacing()</c> (Mn).</summary>
    public static bool IsMarkNonspacing(int cp) => cp >= 0x300 && Lookup(cp, MarkNonspacingBmp, HfUnicodeTables.MarkNonspacing);

    /// <summary>Rust <c>char::is_ascii_punctuation</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsAsciiPunctuation(int cp) =>
        (uint)(cp - 0x21) <= 0x2F - 0x21 || (uint)(cp - 0x3A) <= 0x40 - 0x3A || (uint)(cp - 0x5B) <= 0x60 - 0x5B || (uint)(cp - 0x7B) <= 0x7E - 0x7B;

    /// <summary>BertPreTokenizer's punctuation: ASCII punctuation (symbols included) or Unicode P*.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsBertPunctuation(int cp) => cp < 0x80 ? IsAsciiPunctuation(cp) : IsPunctuation(cp);

    /// <summary>The CJK blocks that BertNormalizer surrounds with spaces (<c>is_chinese_char</c>).</summary>
    public static bool IsChineseChar(int cp) =>
        (uint)(cp - 0x4E00) <= 0x9FFF - 0x4E00 || (uint)(cp - 0x3400) <= 0x4DBF - 0x3400 ||
        (uint)(cp - 0x20000) <= 0x2A6DF - 0x20000 || (uint)(cp - 0x2A700) <= 0x2B73F - 0x2A700 ||
        (uint)(cp - 0x2B740) <= 0x2B81F - 0x2B740 || (uint)(cp - 0x2B920) <= 0x2CEAF - 0x2B920 ||
        (uint)(cp - 0xF900) <= 0xFAFF - 0xF900 || (uint)(cp - 0x2F800) <= 0x2FA1F - 0x2F800;

    /// <summary>
    /// Rust regex <c>\w</c> (Unicode): Alphabetic, marks, decimal digits, connector punctuation, join controls.
    /// Used by added tokens' <c>single_word</c> rule.
    /// </summary>
    public static bool IsWordChar(int cp)
    {
        if (cp < 0x80) return (uint)((cp | 0x20) - 'a') <= 'z' - 'a' || (uint)(cp - '0') <= 9 || cp == '_';
        if (cp is 0x200C or 0x200D) return true;
        switch (CharUnicodeInfo.GetUnicodeCategory(cp))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.NonSpacingMark:
            case UnicodeCategory.SpacingCombiningMark:
            case UnicodeCategory.EnclosingMark:
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.ConnectorPunctuation:
                return true;
            case UnicodeCategory.OtherSymbol:
                // Other_Alphabetic symbols: circled and squared Latin letters.
                return (uint)(cp - 0x24B6) <= 0x24E9 - 0x24B6 || (uint)(cp - 0x1F130) <= 0x1F149 - 0x1F130 ||
                       (uint)(cp - 0x1F150) <= 0x1F169 - 0x1F150 || (uint)(cp - 0x1F170) <= 0x1F189 - 0x1F170;
            default:
                return false;
        }
    }

    /// <summary>
    /// Appends Rust's <c>char::to_lowercase</c> of <paramref name="cp"/>: the simple lowercase mapping (with the
    /// characters Rust's newer Unicode data lowercases and .NET's does not), except U+0130 which lowercases to
    /// "i\u0307" (the only unconditional multi-character lowercase mapping).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void AppendLower(ref CharBuffer buffer, int cp)
    {
        if (cp < 0x80)
        {
            buffer.Append((char)((uint)(cp - 'A') <= 'Z' - 'A' ? cp | 0x20 : cp));
        }
        else if (cp == 0x130)
        {
            buffer.Append('i');
            buffer.Append('\u0307');
        }
        else
        {
            buffer.AppendCodePoint(cp >= FirstLowercaseException && FindPair(HfUnicodeTables.LowercaseExceptions, cp) is int lower
                ? lower
                : Rune.ToLowerInvariant(new Rune(cp)).Value);
        }
    }

    /// <summary>Reads the code point at <paramref name="i"/> (a surrogate pair counts as one) and its UTF-16 length.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int CodePointAt(ReadOnlySpan<char> text, int i, out int width)
    {
        char c = text[i];
        if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
        {
            width = 2;
            return char.ConvertToUtf32(c, text[i + 1]);
        }
        width = 1;
        return c;
    }

    /// <summary>
    /// Replaces unpaired surrogates with U+FFFD, as converting the string to UTF-8 for the Rust tokenizer does;
    /// returns <paramref name="text"/> itself when it is well formed.
    /// </summary>
    public static string ReplaceLoneSurrogates(string text)
    {
        int first = text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF');
        if (first < 0) return text;
        char[]? copy = null;
        for (int i = first; i < text.Length; i++)
        {
            char c = text[i];
            if (!char.IsSurrogate(c)) continue;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }
            copy ??= text.ToCharArray();
            copy[i] = '\uFFFD';
        }
        return copy is null ? text : new string(copy);
    }

    /// <summary>
    /// <paramref name="text"/> in the given Unicode normalization form, as tokenizers computes it: code points that
    /// .NET rejects (U+FFFE) or decomposes while tokenizers' older tables do not are left as they are, normalizing
    /// the text piecewise around them (for tokenizers they are starters that compose with nothing).
    /// </summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        if (FindNormalizationBoundary(text, 0, form) < 0) return text.Normalize(form);
        var buffer = new CharBuffer(text.Length + 16);
        try
        {
            return NormalizeInto(text, form, ref buffer) ? buffer.ToString() : text;
        }
        finally
        {
            buffer.Dispose();
        }
    }

    /// <summary>
    /// Appends <paramref name="text"/> in the given normalization form to <paramref name="output"/> and returns true,
    /// or returns false (appending nothing) when it is already normalized.
    /// </summary>
    public static bool NormalizeInto(ReadOnlySpan<char> text, NormalizationForm form, ref CharBuffer output)
    {
        int boundary = FindNormalizationBoundary(text, 0, form);
        if (boundary < 0)
        {
            if (text.IsNormalized(form)) return false;
            AppendNormalized(text, form, ref output);
            return true;
        }
        int start = 0;
        while (true)
        {
            ReadOnlySpan<char> piece = text[start..(boundary < 0 ? text.Length : boundary)];
            if (piece.IsNormalized(form)) output.Append(piece);
            else AppendNormalized(piece, form, ref output);
            if (boundary < 0) return true;
            CodePointAt(text, boundary, out int width);
            output.Append(text.Slice(boundary, width));
            start = boundary + width;
            boundary = FindNormalizationBoundary(text, start, form);
        }
    }

    // The index of the next code point that must not go through .NET normalization, or -1.
    private static int FindNormalizationBoundary(ReadOnlySpan<char> text, int from, NormalizationForm form)
    {
        const char FirstException = '\u32FF';   // the smallest of U+FFFE and the decomposition exceptions
        int i = text[from..].IndexOfAnyExceptInRange('\0', (char)(FirstException - 1));
        if (i < 0) return -1;
        bool compatibility = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        ReadOnlySpan<int> exceptions = compatibility ? HfUnicodeTables.CompatibilityDecompositionExceptions : HfUnicodeTables.CanonicalDecompositionExceptions;
        for (i += from; i < text.Length;)
        {
            int cp = CodePointAt(text, i, out int width);
            if (cp == 0xFFFE || (cp >= FirstException && exceptions.BinarySearch(cp) >= 0)) return i;
            i += width;
        }
        return -1;
    }

    private static void AppendNormalized(ReadOnlySpan<char> text, NormalizationForm form, ref CharBuffer output)
    {
        int length = text.GetNormalizedLength(form);
        if (!text.TryNormalize(output.GetAppendSpan(length), out int written, form))
            throw new InvalidOperationException("Unicode normalization failed.");
        output.Advance(written);
    }

    private const int FirstLowercaseException = 0x1C89;

    // The second element of the (key, value) pair whose key is cp in a sorted pair table, or null.
    private static int? FindPair(ReadOnlySpan<int> pairs, int cp)
    {
        int lo = 0, hi = pairs.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            int key = pairs[2 * mid];
            if (cp < key) hi = mid - 1;
            else if (cp > key) lo = mid + 1;
            else return pairs[2 * mid + 1];
        }
        return null;
    }

    private static bool Lookup(int cp, ulong[] bmp, ReadOnlySpan<int> ranges)
    {
        if (cp <= 0xFFFF) return (bmp[cp >> 6] & (1UL << (cp & 63))) != 0;
        int lo = 0, hi = ranges.Length / 2 - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            if (cp < ranges[2 * mid]) hi = mid - 1;
            else if (cp > ranges[2 * mid + 1]) lo = mid + 1;
            else return true;
        }
        return false;
    }

    private static ulong[] BuildBmpBitmap(ReadOnlySpan<int> ranges)
    {
        var bits = new ulong[0x10000 / 64];
        for (int r = 0; r < ranges.Length; r += 2)
        {
            for (int cp = ranges[r]; cp <= ranges[r + 1] && cp <= 0xFFFF; cp++)
                bits[cp >> 6] |= 1UL << (cp & 63);
        }
        return bits;
    }
}
