namespace TokenEmbed.Tokenization;

/// <summary>
/// A Hugging Face pre-tokenizer: splits a normalized piece of text into the words the model tokenizes
/// separately. Words are slices of the input where possible; a pre-tokenizer that rewrites text
/// (byte-level, metaspace) may return slices of new strings.
/// </summary>
internal abstract class TextPreTokenizer
{
    /// <summary>Appends the words of <paramref name="text"/> (never empty ones) to <paramref name="words"/>.</summary>
    public abstract void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words);

    /// <summary>
    /// As <see cref="PreTokenize(ReadOnlyMemory{char}, List{ReadOnlyMemory{char}})"/>, told whether
    /// <paramref name="text"/> begins at the start of the input (Hugging Face's <c>offsets_original().0 == 0</c>,
    /// which Metaspace's <c>prepend_scheme: first</c> tests).
    /// </summary>
    public virtual void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words, bool atInputStart) =>
        PreTokenize(text, words);

    /// <summary>
    /// Appends the words of each of <paramref name="pieces"/>, in order (what a <c>Sequence</c> hands to its later
    /// members); only the first piece can begin at the start of the input (<paramref name="firstAtInputStart"/>).
    /// Pre-tokenizers that rewrite text may override this to do all the pieces in one pass.
    /// </summary>
    public virtual void PreTokenizeAll(IReadOnlyList<ReadOnlyMemory<char>> pieces, List<ReadOnlyMemory<char>> words, bool firstAtInputStart)
    {
        for (int i = 0; i < pieces.Count; i++) PreTokenize(pieces[i], words, firstAtInputStart && i == 0);
    }

    /// <summary>
    /// Builds the pre-tokenizer a <c>tokenizer.json</c> <c>pre_tokenizer</c> object describes (null for none);
    /// an unsupported type throws <see cref="ModelLoadException"/>.
    /// </summary>
    public static TextPreTokenizer? FromJson(JsonComponent? json)
    {
        if (json is null) return null;
        switch (json.Type)
        {
            case "BertPreTokenizer":
                return new BertPreTokenizer();
            case "WhitespaceSplit":
                return new WhitespaceSplitPreTokenizer();
            case "Metaspace":
                return MetaspacePreTokenizer.FromMetaspaceJson(json);
            case "ByteLevel":
                // trim_offsets only changes offsets.
                return new ByteLevelPreTokenizer(json.GetBool("add_prefix_space", true), json.GetBool("use_regex", true));
            case "Split":
                return SplitPreTokenizer.FromSplitJson(json);
            case "Sequence":
                var parts = new List<TextPreTokenizer>();
                foreach (var item in json.GetComponents("pretokenizers"))
                {
                    var p = FromJson(item);
                    if (p is not null) parts.Add(p);
                }
                return new SequencePreTokenizer(parts);
            default:
                throw json.Unsupported("pre-tokenizer");
        }
    }
}
