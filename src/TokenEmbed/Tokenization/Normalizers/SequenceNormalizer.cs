namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>Sequence</c> normalizer: applies its normalizers in order.</summary>
internal sealed class SequenceNormalizer : TextNormalizer
{
    private readonly TextNormalizer[] _normalizers;

    public SequenceNormalizer(IEnumerable<TextNormalizer> normalizers) => _normalizers = normalizers.ToArray();

    public override string Normalize(string text)
    {
        foreach (var n in _normalizers) text = n.Normalize(text);
        return text;
    }
}
