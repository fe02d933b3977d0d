// Ports the behaviour of Hugging Face tokenizers' pre_tokenizers/metaspace.rs (Metaspace, its serde form with the
// legacy add_prefix_space/str_rep fields), written from its documented behaviour, not copied.
namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>Metaspace</c>: spaces become the replacement character (<c>▁</c>), which is prepended to the
/// piece (<c>prepend_scheme</c> <c>always</c>; <c>first</c>: only to the piece at the start of the input;
/// <c>never</c>) unless the piece already starts with it; with <c>split</c> the piece is then split before each
/// run of replacement characters (Hugging Face's <c>MergedWithNext</c>).
/// </summary>
internal sealed class MetaspacePreTokenizer : TextPreTokenizer
{
    /// <summary>When the replacement is prepended.</summary>
    public enum PrependScheme
    {
        /// <summary>To every piece.</summary>
        Always,

        /// <summary>To the piece that starts the input.</summary>
        First,

        /// <summary>Never.</summary>
        Never,
    }

    private readonly string _replacement;   // one code point
    private readonly PrependScheme _prepend;
    private readonly bool _split;

    public MetaspacePreTokenizer(string replacement, PrependScheme prepend, bool split)
    {
        _replacement = replacement;
        _prepend = prepend;
        _split = split;
    }

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words) =>
        PreTokenize(text, words, atInputStart: true);

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words, bool atInputStart)
    {
        if (text.IsEmpty) return;
        ReadOnlySpan<char> span = text.Span;
        // Spaces are replaced first, so a leading space counts as a leading replacement.
        bool prepend = span[0] != ' ' && !span.StartsWith(_replacement, StringComparison.Ordinal) && _prepend switch
        {
            PrependScheme.Always => true,
            PrependScheme.First => atInputStart,
            _ => false,
        };
        ReadOnlyMemory<char> rewritten = text;
        if (prepend || span.Contains(' '))
        {
            var buffer = new CharBuffer(span.Length + 2 * _replacement.Length);
            try
            {
                if (prepend) buffer.Append(_replacement);
                foreach (char c in span)
                {
                    if (c == ' ') buffer.Append(_replacement);
                    else buffer.Append(c);
                }
                rewritten = buffer.ToString().AsMemory();
            }
            finally
            {
                buffer.Dispose();
            }
        }
        if (!_split)
        {
            words.Add(rewritten);
            return;
        }

        // MergedWithNext: a piece starts at each replacement that does not follow another replacement.
        span = rewritten.Span;
        int start = 0;
        bool previousWasReplacement = false;
        for (int i = 0; i < span.Length;)
        {
            bool isReplacement = span[i..].StartsWith(_replacement, StringComparison.Ordinal);
            if (isReplacement && !previousWasReplacement && i > start)
            {
                words.Add(rewritten[start..i]);
                start = i;
            }
            previousWasReplacement = isReplacement;
            i += isReplacement ? _replacement.Length : 1;
        }
        if (start < span.Length) words.Add(rewritten[start..]);
    }

    /// <summary>
    /// Reads a <c>Metaspace</c> object as Hugging Face does: <c>replacement</c> (one character), <c>prepend_scheme</c>
    /// (default <c>always</c>; <c>add_prefix_space: false</c> of older files means <c>never</c>), <c>split</c>
    /// (default true); <c>str_rep</c> is ignored.
    /// </summary>
    public static MetaspacePreTokenizer FromMetaspaceJson(JsonComponent json)
    {
        string replacement = json.GetString("replacement") ?? throw json.Invalid($"{json.Path}.replacement is missing");
        if (replacement.Length == 0 || replacement.Length > 2 || (replacement.Length == 2 && !char.IsSurrogatePair(replacement[0], replacement[1])))
            throw json.Invalid($"{json.Path}.replacement must be a single character");
        var scheme = json.GetString("prepend_scheme") switch
        {
            null or "always" => PrependScheme.Always,
            "first" => PrependScheme.First,
            "never" => PrependScheme.Never,
            string other => throw json.Invalid($"{json.Path}.prepend_scheme \"{other}\" must be \"always\", \"first\" or \"never\""),
        };
        if (json.GetNullableBool("add_prefix_space") == false) scheme = PrependScheme.Never;
        return new MetaspacePreTokenizer(replacement, scheme, json.GetBool("split", true));
    }
}
