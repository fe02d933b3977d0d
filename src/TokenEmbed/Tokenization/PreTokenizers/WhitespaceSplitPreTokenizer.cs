namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>WhitespaceSplit</c>: splits on whitespace (Rust <c>char::is_whitespace</c>), which is removed.</summary>
internal sealed class WhitespaceSplitPreTokenizer : TextPreTokenizer
{
    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words)
    {
        ReadOnlySpan<char> span = text.Span;
        int start = -1;
        for (int i = 0; i < span.Length;)
        {
            int cp = HfUnicode.CodePointAt(span, i, out int width);
            if (HfUnicode.IsWhitespace(cp))
            {
                if (start >= 0)
                {
                    words.Add(text[start..i]);
                    start = -1;
                }
            }
            else if (start < 0)
            {
                start = i;
            }
            i += width;
        }
        if (start >= 0) words.Add(text[start..]);
    }
}
