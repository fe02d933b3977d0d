namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>BertPreTokenizer</c>: splits on whitespace (removed), then isolates every punctuation
/// character (ASCII punctuation and symbols, and Unicode P* as the <c>unicode_categories</c> crate knows it).
/// </summary>
internal sealed class BertPreTokenizer : TextPreTokenizer
{
    private static ReadOnlySpan<byte> AsciiClasses =>
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, // \t \n \v \f \r are whitespace
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, // space ! " # $ % & ' ( ) * + , - . /
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, // 0-9 : ; < = > ?
        2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // @ A-O
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, // P-Z [ \ ] ^ _
        2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ` a-o
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 0, // p-z { | } ~ DEL
    ];

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words)
    {
        ReadOnlySpan<char> span = text.Span;
        ReadOnlySpan<byte> asciiClasses = AsciiClasses;
        int start = -1;
        for (int i = 0; i < span.Length;)
        {
            char c = span[i];
            if (c < 0x80)
            {
                // Fast path: 0 = word character, 1 = whitespace, 2 = punctuation.
                byte cls = asciiClasses[c];
                if (cls == 0)
                {
                    if (start < 0) start = i;
                }
                else
                {
                    if (start >= 0)
                    {
                        words.Add(text[start..i]);
                        start = -1;
                    }
                    if (cls == 2) words.Add(text.Slice(i, 1));
                }
                i++;
                continue;
            }
            int cp = HfUnicode.CodePointAt(span, i, out int width);
            if (HfUnicode.IsWhitespace(cp))
            {
                if (start >= 0)
                {
                    words.Add(text[start..i]);
                    start = -1;
                }
            }
            else if (HfUnicode.IsBertPunctuation(cp))
            {
                if (start >= 0)
                {
                    words.Add(text[start..i]);
                    start = -1;
                }
                words.Add(text.Slice(i, width));
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
