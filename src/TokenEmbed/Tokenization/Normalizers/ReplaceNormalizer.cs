using System.Text.RegularExpressions;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>Replace</c> normalizer: every match of <c>pattern</c> (<c>{"String": …}</c>, a literal, or
/// <c>{"Regex": …}</c>) is replaced by <c>content</c>, taken literally.
/// </summary>
internal sealed class ReplaceNormalizer : TextNormalizer
{
    private readonly string? _literal;
    private readonly Regex? _regex;
    private readonly string _content;

    private ReplaceNormalizer(string? literal, Regex? regex, string content)
    {
        _literal = literal;
        _regex = regex;
        _content = content;
    }

    public override string Normalize(string text)
    {
        if (_regex is not null) return _regex.Replace(text, _ => _content);
        return _literal!.Length == 0 ? text : text.Replace(_literal, _content, StringComparison.Ordinal);
    }

    /// <summary>Reads <c>pattern</c> and <c>content</c> of a <c>Replace</c> object.</summary>
    public static ReplaceNormalizer FromReplaceJson(JsonComponent json)
    {
        string content = json.GetString("content") ?? throw json.Invalid($"{json.Path}.content is missing");
        var pattern = json.GetComponent("pattern") ?? throw json.Invalid($"{json.Path}.pattern is missing");
        if (pattern.GetString("String") is string literal) return new ReplaceNormalizer(literal, null, content);
        if (pattern.GetString("Regex") is string expression)
        {
            try
            {
                return new ReplaceNormalizer(null, new Regex(expression, RegexOptions.CultureInvariant), content);
            }
            catch (ArgumentException e)
            {
                throw pattern.Invalid($"{pattern.Path}.Regex is not a supported regular expression: {e.Message}");
            }
        }
        throw pattern.Invalid($"{pattern.Path} must be {{\"String\": …}} or {{\"Regex\": …}}");
    }
}
