// Ports the behaviour of Hugging Face tokenizers' normalizers/precompiled.rs and of the spm_precompiled crate it
// uses (SentencePiece's precompiled charsmap: a darts-clone double-array trie + a table of replacement strings),
// written from their documented behaviour, not copied.
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>Precompiled</c> normalizer: SentencePiece's compiled normalization rules (e.g. <c>nmt_nfkc</c>).
/// The <c>precompiled_charsmap</c> blob is a little-endian uint32 trie size, the darts-clone double array (uint32
/// units) over UTF-8 keys, then NUL-terminated UTF-8 replacement strings that the trie's values index. As Hugging
/// Face applies it: the text is walked grapheme by grapheme (extended grapheme clusters); a grapheme shorter than
/// 6 UTF-8 bytes with a match is replaced whole by its first (shortest-prefix) match, otherwise each of its
/// characters is replaced by its match or kept.
/// </summary>
internal sealed class PrecompiledNormalizer : TextNormalizer
{
    private const int MaxWholeGraphemeBytes = 6;

    private readonly uint[] _trie;
    private readonly byte[] _table;
    private readonly ConcurrentDictionary<int, string> _replacements = new();
    private readonly string?[] _asciiReplacements = new string?[128];   // null = unchanged

    /// <summary>Parses a charsmap blob; a malformed one throws <see cref="ModelLoadException"/> through <paramref name="invalid"/>.</summary>
    public PrecompiledNormalizer(byte[] charsmap, Func<string, Exception> invalid)
    {
        if (charsmap.Length < 4) throw invalid("precompiled_charsmap is shorter than its 4-byte header");
        uint trieBytes = BinaryPrimitives.ReadUInt32LittleEndian(charsmap);
        if (trieBytes % 4 != 0 || trieBytes > charsmap.Length - 4L || trieBytes == 0)
            throw invalid($"precompiled_charsmap has an invalid trie size {trieBytes} for {charsmap.Length} bytes");
        _trie = new uint[trieBytes / 4];
        for (int i = 0; i < _trie.Length; i++) _trie[i] = BinaryPrimitives.ReadUInt32LittleEndian(charsmap.AsSpan(4 + 4 * i));
        _table = charsmap[(4 + (int)trieBytes)..];
        try
        {
            _ = new UTF8Encoding(false, throwOnInvalidBytes: true).GetCharCount(_table);
        }
        catch (DecoderFallbackException)
        {
            throw invalid("precompiled_charsmap's replacement table is not valid UTF-8");
        }

        Span<byte> key = stackalloc byte[1];
        for (int c = 1; c < 128; c++)
        {
            key[0] = (byte)c;
            int value = FirstMatch(key);
            if (value >= 0) _asciiReplacements[c] = Replacement(value);
        }
    }

    public override string Normalize(string text)
    {
        ReadOnlySpan<char> span = text;
        // Fast path: ASCII without rules ("\r" excluded: "\r\n" is one grapheme, looked up whole).
        int k = 0;
        while (k < span.Length && span[k] < 0x80 && span[k] != '\r' && _asciiReplacements[span[k]] is null) k++;
        if (k == span.Length) return text;

        var buffer = new CharBuffer(text.Length + 16);
        try
        {
            bool modified = false;
            Span<byte> utf8 = stackalloc byte[MaxWholeGraphemeBytes];
            int pos = 0;
            while (pos < span.Length)
            {
                int length = StringInfo.GetNextTextElementLength(span[pos..]);
                ReadOnlySpan<char> grapheme = span.Slice(pos, length);
                pos += length;
                if (length == 1 && grapheme[0] < 0x80)
                {
                    string? ascii = _asciiReplacements[grapheme[0]];
                    if (ascii is null) buffer.Append(grapheme[0]);
                    else
                    {
                        buffer.Append(ascii);
                        modified = true;
                    }
                    continue;
                }
                if (Encoding.UTF8.TryGetBytes(grapheme, utf8, out int byteCount) && byteCount < MaxWholeGraphemeBytes)
                {
                    int value = FirstMatch(utf8[..byteCount]);
                    if (value >= 0)
                    {
                        buffer.Append(Replacement(value));
                        modified = true;
                        continue;
                    }
                }
                for (int i = 0; i < grapheme.Length;)
                {
                    int width = char.IsHighSurrogate(grapheme[i]) && i + 1 < grapheme.Length && char.IsLowSurrogate(grapheme[i + 1]) ? 2 : 1;
                    ReadOnlySpan<char> ch = grapheme.Slice(i, width);
                    i += width;
                    int n = Encoding.UTF8.GetBytes(ch, utf8);
                    int value = FirstMatch(utf8[..n]);
                    if (value >= 0)
                    {
                        buffer.Append(Replacement(value));
                        modified = true;
                    }
                    else
                    {
                        buffer.Append(ch);
                    }
                }
            }
            return modified ? buffer.ToString() : text;
        }
        finally
        {
            buffer.Dispose();
        }
    }

    /// <summary>
    /// darts-clone <c>commonPrefixSearch</c> over <paramref name="key"/>, returning only the first result (the value
    /// of the shortest key that is a prefix), or -1. Positions outside the array (a malformed blob) end the search.
    /// </summary>
    private int FirstMatch(ReadOnlySpan<byte> key)
    {
        uint[] units = _trie;
        long nodePos = 0;
        uint unit = units[0];
        nodePos ^= Offset(unit);
        foreach (byte c in key)
        {
            if (c == 0) break;
            nodePos ^= c;
            if ((ulong)nodePos >= (ulong)units.Length) return -1;
            unit = units[nodePos];
            if ((unit & ((1u << 31) | 0xFF)) != c) return -1;
            nodePos ^= Offset(unit);
            if (((unit >> 8) & 1) == 1)
            {
                if ((ulong)nodePos >= (ulong)units.Length) return -1;
                return (int)(units[nodePos] & ((1u << 31) - 1));
            }
        }
        return -1;
    }

    private static long Offset(uint unit) => (long)(unit >> 10) << (int)((unit & (1u << 9)) >> 6);

    // The NUL-terminated string at a table offset (empty when the offset is outside the table).
    private string Replacement(int offset) => _replacements.GetOrAdd(offset, o =>
    {
        if (o >= _table.Length) return string.Empty;
        int end = Array.IndexOf(_table, (byte)0, o);
        if (end < 0) end = _table.Length;
        return Encoding.UTF8.GetString(_table, o, end - o);
    });
}
