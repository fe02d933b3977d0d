using System.Text;

namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>NFC</c>, <c>NFD</c>, <c>NFKC</c> and <c>NFKD</c> normalizers.</summary>
internal sealed class UnicodeFormNormalizer : TextNormalizer
{
    private readonly NormalizationForm _form;

    public UnicodeFormNormalizer(NormalizationForm form) => _form = form;

    // Returns the same instance when the text is already normalized (ASCII fast path included).
    public override string Normalize(string text) => HfUnicode.Normalize(text, _form);
}
