namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>Strip</c> normalizer: removes leading and/or trailing whitespace (Rust <c>char::is_whitespace</c>).</summary>
internal sealed class StripNormalizer : TextNormalizer
{
    private readonly bool _left;
    private readonly bool _right;

    public StripNormalizer(bool left, bool right)
    {
        _left = left;
        _right = right;
    }

    public override string Normalize(string text)
    {
        int start = 0, end = text.Length;
        // White_Space has no astral code points, so UTF-16 units can be tested one by one.
        if (_left)
        {
            while (start < end && HfUnicode.IsWhitespace(text[start])) start++;
        }
        if (_right)
        {
            while (end > start && HfUnicode.IsWhitespace(text[end - 1])) end--;
        }
        return start == 0 && end == text.Length ? text : text[start..end];
    }
}
