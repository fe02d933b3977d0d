namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>Lowercase</c> normalizer (Rust <c>char::to_lowercase</c> per character).</summary>
internal sealed class LowercaseNormalizer : TextNormalizer
{
    public override string Normalize(string text)
    {
        var buffer = new CharBuffer(text.Length + 4);
        try
        {
            ReadOnlySpan<char> span = text;
            for (int i = 0; i < span.Length;)
            {
                int cp = HfUnicode.CodePointAt(span, i, out int width);
                i += width;
                HfUnicode.AppendLower(ref buffer, cp);
            }
            return buffer.Span.SequenceEqual(text) ? text : buffer.ToString();
        }
        finally
        {
            buffer.Dispose();
        }
    }
}
