using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>ByteLevel</c> pre-tokenizer: optionally prepends a space to each piece that does not start with
/// one (<c>add_prefix_space</c>), optionally splits it with the GPT-2 regex (<c>use_regex</c>, matches isolated), then
/// rewrites each word's UTF-8 bytes as the 256 printable characters of GPT-2's byte-to-unicode table
/// (<c>trim_offsets</c> only changes offsets, which this pipeline does not report). The words of one call are
/// slices of one new string.
/// </summary>
internal sealed partial class ByteLevelPreTokenizer : TextPreTokenizer
{
    /// <summary>GPT-2's pre-tokenization pattern, as Hugging Face's ByteLevel uses it.</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    // Byte -> char of GPT-2's bytes_to_unicode: the printable bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves,
    // the others, in order, to U+0100, U+0101, …
    private static readonly char[] ByteToChar = BuildByteToChar();

    private readonly bool _addPrefixSpace;
    private readonly RegexSplitter? _splitter;

    public ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex)
    {
        _addPrefixSpace = addPrefixSpace;
        _splitter = useRegex ? new RegexSplitter(Gpt2Regex(), SplitBehavior.Isolated, invert: false) : null;
    }

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words)
    {
        if (text.IsEmpty) return;
        PreTokenizeAll([text], words, firstAtInputStart: true);
    }

    /// <summary>All the pieces in one pass, so that their words share one new string.</summary>
    public override void PreTokenizeAll(IReadOnlyList<ReadOnlyMemory<char>> pieces, List<ReadOnlyMemory<char>> words, bool firstAtInputStart)
    {
        var ranges = new List<(int Start, int Length)>();
        var buffer = new CharBuffer(256);
        try
        {
            var split = new List<ReadOnlyMemory<char>>();
            foreach (var original in pieces)
            {
                if (original.IsEmpty) continue;
                var piece = original;
                if (_addPrefixSpace && piece.Span[0] != ' ') piece = string.Concat(" ", piece.Span).AsMemory();
                if (_splitter is null)
                {
                    AppendMapped(piece.Span, ref buffer, ranges);
                    continue;
                }
                split.Clear();
                _splitter.Split(piece, split);
                foreach (var word in split) AppendMapped(word.Span, ref buffer, ranges);
            }
            if (ranges.Count == 0) return;
            var mapped = buffer.ToString().AsMemory();
            foreach (var (start, length) in ranges) words.Add(mapped.Slice(start, length));
        }
        finally
        {
            buffer.Dispose();
        }
    }

    /// <summary>Appends the byte-level form of <paramref name="word"/> (its UTF-8 bytes, one char each).</summary>
    public static void AppendByteLevel(ReadOnlySpan<char> word, ref CharBuffer buffer)
    {
        char[] table = ByteToChar;
        for (int i = 0; i < word.Length;)
        {
            char c = word[i];
            if (c < 0x80)
            {
                buffer.Append(table[c]);
                i++;
                continue;
            }
            int cp = HfUnicode.CodePointAt(word, i, out int width);
            i += width;
            if (cp < 0x800)
            {
                buffer.Append(table[0xC0 | (cp >> 6)]);
                buffer.Append(table[0x80 | (cp & 0x3F)]);
            }
            else if (cp < 0x10000)
            {
                buffer.Append(table[0xE0 | (cp >> 12)]);
                buffer.Append(table[0x80 | ((cp >> 6) & 0x3F)]);
                buffer.Append(table[0x80 | (cp & 0x3F)]);
            }
            else
            {
                buffer.Append(table[0xF0 | (cp >> 18)]);
                buffer.Append(table[0x80 | ((cp >> 12) & 0x3F)]);
                buffer.Append(table[0x80 | ((cp >> 6) & 0x3F)]);
                buffer.Append(table[0x80 | (cp & 0x3F)]);
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AppendMapped(ReadOnlySpan<char> word, ref CharBuffer buffer, List<(int Start, int Length)> ranges)
    {
        if (word.IsEmpty) return;
        int start = buffer.Length;
        AppendByteLevel(word, ref buffer);
        ranges.Add((start, buffer.Length - start));
    }

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }

    [GeneratedRegex(Gpt2Pattern, RegexOptions.CultureInvariant)]
    private static partial Regex Gpt2Regex();
}
