namespace TokenEmbed.Tokenization;

/// <summary>A Hugging Face normalizer: maps a piece of input text to its normalized form.</summary>
internal abstract class TextNormalizer
{
    /// <summary>The normalized text (may return <paramref name="text"/> itself when nothing changes).</summary>
    public abstract string Normalize(string text);

    /// <summary>
    /// Builds the normalizer a <c>tokenizer.json</c> <c>normalizer</c> object describes (null for none);
    /// an unsupported type throws <see cref="ModelLoadException"/>.
    /// </summary>
    public static TextNormalizer? FromJson(JsonComponent? json)
    {
        if (json is null) return null;
        switch (json.Type)
        {
            case "BertNormalizer":
                bool lowercase = json.GetBool("lowercase", true);
                return new BertNormalizer(
                    cleanText: json.GetBool("clean_text", true),
                    handleChineseChars: json.GetBool("handle_chinese_chars", true),
                    stripAccents: json.GetNullableBool("strip_accents") ?? lowercase,
                    lowercase: lowercase);
            case "Sequence":
                var parts = new List<TextNormalizer>();
                foreach (var item in json.GetComponents("normalizers"))
                {
                    var n = FromJson(item);
                    if (n is not null) parts.Add(n);
                }
                return new SequenceNormalizer(parts);
            case "NFC":
                return new UnicodeFormNormalizer(System.Text.NormalizationForm.FormC);
            case "NFD":
                return new UnicodeFormNormalizer(System.Text.NormalizationForm.FormD);
            case "NFKC":
                return new UnicodeFormNormalizer(System.Text.NormalizationForm.FormKC);
            case "NFKD":
                return new UnicodeFormNormalizer(System.Text.NormalizationForm.FormKD);
            case "Lowercase":
                return new LowercaseNormalizer();
            case "Precompiled":
                return PrecompiledFromJson(json);
            case "Strip":
                return new StripNormalizer(json.GetBool("strip_left", true), json.GetBool("strip_right", true));
            case "Replace":
                return ReplaceNormalizer.FromReplaceJson(json);
            default:
                throw json.Unsupported("normalizer");
        }
    }

    // precompiled_charsmap: base64 of SentencePiece's compiled rules; an empty one (some converted files) changes nothing.
    private static TextNormalizer? PrecompiledFromJson(JsonComponent json)
    {
        string encoded = json.GetString("precompiled_charsmap") ?? string.Empty;
        byte[] blob;
        try
        {
            blob = Convert.FromBase64String(encoded);
        }
        catch (FormatException)
        {
            throw json.Invalid($"{json.Path}.precompiled_charsmap is not base64");
        }
        if (blob.Length == 0) return null;
        return new PrecompiledNormalizer(blob, message => json.Invalid($"{json.Path}.{message}"));
    }
}
