using TokenEmbed.Loading;
namespace TokenEmbed.Tokenization;

/// <summary>Loads the tokenizer of a model folder.</summary>
internal static class TokenizerLoader
{
    public const string TokenizerJsonFileName = "tokenizer.json";
    public const string VocabTxtFileName = "vocab.txt";

    // transformers' special-token keys, in its order, with BertTokenizer's defaults.
    private static readonly (string Key, string? BertDefault)[] BertSpecialTokens =
    [
        ("bos_token", null), ("eos_token", null), ("unk_token", "[UNK]"), ("sep_token", "[SEP]"),
        ("pad_token", "[PAD]"), ("cls_token", "[CLS]"), ("mask_token", "[MASK]"),
    ];

    // Tokenizer files this library cannot read without a tokenizer.json.
    private static readonly string[] UnsupportedAloneFileNames =
        ["tokenizer.model", "sentencepiece.bpe.model", "spiece.model", "vocab.json", "merges.txt"];

    /// <summary>
    /// The tokenizer of <paramref name="folder"/>: from <c>tokenizer.json</c>, else a BERT WordPiece tokenizer
    /// from <c>vocab.txt</c> (+ <c>tokenizer_config.json</c>). Null when the folder has no tokenizer files at all;
    /// <see cref="ModelLoadException"/> when they are broken or of an unsupported kind.
    /// </summary>
    public static TextTokenizer? FromFolder(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        if (!Directory.Exists(folder)) return null;

        string tokenizerJson = FolderPaths.Inside(folder, TokenizerJsonFileName);
        if (File.Exists(tokenizerJson)) return FromTokenizerJson(tokenizerJson, TokenizerConfig.Load(folder));

        string vocabTxt = FolderPaths.Inside(folder, VocabTxtFileName);
        if (File.Exists(vocabTxt)) return FromVocabTxt(vocabTxt, TokenizerConfig.Load(folder));

        foreach (string name in UnsupportedAloneFileNames)
        {
            string path = Path.Combine(folder, name);
            if (File.Exists(path))
                throw new ModelLoadException($"{name}: this tokenizer format is not supported without a {TokenizerJsonFileName} ({path})", path);
        }
        return null;
    }

    /// <summary>A tokenizer from a <c>tokenizer.json</c> (the optional config only supplies the padding token).</summary>
    public static TextTokenizer FromTokenizerJson(string path, TokenizerConfig? config = null)
    {
        using var json = TokenizerJson.Load(path);
        var normalizer = TextNormalizer.FromJson(json.Normalizer);
        var preTokenizer = TextPreTokenizer.FromJson(json.PreTokenizer);
        var model = TokenModel.FromJson(json.Model);
        var postProcessor = PostProcessor.FromJson(json.PostProcessor);
        int? paddingId = json.PaddingId;
        string? paddingToken = json.PaddingToken;
        return new HfTokenizer(normalizer, preTokenizer, model, json.AddedTokens, postProcessor,
            t => paddingId ?? (paddingToken is null ? null : t.TokenToId(paddingToken)) ?? ResolvePad(t, config));
    }

    /// <summary>
    /// A BERT WordPiece tokenizer from <c>vocab.txt</c>, built as transformers converts <c>BertTokenizer</c> to a
    /// fast tokenizer: BertNormalizer (do_lower_case, strip_accents, tokenize_chinese_chars), BertPreTokenizer,
    /// WordPiece (<c>##</c>, 100 characters), template <c>cls $A sep</c>; added tokens from
    /// <c>added_tokens_decoder</c>, then the special tokens not yet among them.
    /// </summary>
    public static TextTokenizer FromVocabTxt(string vocabPath, TokenizerConfig? config = null)
    {
        var vocab = WordPieceModel.ReadVocabTxt(vocabPath);
        bool lowercase = config?.DoLowerCase ?? true;
        var normalizer = new BertNormalizer(
            cleanText: true,
            handleChineseChars: config?.TokenizeChineseChars ?? true,
            stripAccents: config?.StripAccents ?? lowercase,
            lowercase: lowercase);
        // The special tokens' defaults are BertTokenizer's.
        string unk = config?.Token("unk_token") ?? "[UNK]";
        string cls = config?.Token("cls_token") ?? "[CLS]";
        string sep = config?.Token("sep_token") ?? "[SEP]";
        var model = new WordPieceModel(vocab, unk, "##", 100, vocabPath);

        var added = new List<AddedTokenSpec>();
        if (config is not null) added.AddRange(config.AddedTokensDecoder.Values);
        var present = new HashSet<string>(added.Select(t => t.Content), StringComparer.Ordinal);
        var specials = new List<AddedTokenSpec>();
        foreach (var (key, bertDefault) in BertSpecialTokens)
        {
            // A key the config leaves out (or sets to null) keeps BertTokenizer's default.
            if (config is not null && config.SpecialTokens.TryGetValue(key, out var t)) specials.Add(t);
            else if (bertDefault is not null) specials.Add(new AddedTokenSpec(bertDefault, null, Special: true, Normalized: false));
        }
        if (config is not null) specials.AddRange(config.AdditionalSpecialTokens);
        foreach (var t in specials)
        {
            if (present.Add(t.Content)) added.Add(t with { Special = true });
        }

        int clsId = model.TokenToId(cls) ?? throw new ModelLoadException($"{VocabTxtFileName}: the cls token \"{cls}\" is not in the vocabulary ({vocabPath})", vocabPath);
        int sepId = model.TokenToId(sep) ?? throw new ModelLoadException($"{VocabTxtFileName}: the sep token \"{sep}\" is not in the vocabulary ({vocabPath})", vocabPath);
        var postProcessor = new TemplatePostProcessor([[clsId], null, [sepId]]);
        return new HfTokenizer(normalizer, new BertPreTokenizer(), model, added, postProcessor, t => ResolvePad(t, config));
    }

    // The config's pad_token, else a conventionally named padding token.
    private static int? ResolvePad(TextTokenizer tokenizer, TokenizerConfig? config)
    {
        string? pad = config?.Token("pad_token");
        if (pad is not null && tokenizer.TokenToId(pad) is int id) return id;
        return tokenizer.TokenToId("[PAD]") ?? tokenizer.TokenToId("<pad>");
    }
}
