using System.Collections.Concurrent;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace TokenEmbed.Tokenization;

/// <summary>
/// Hugging Face <c>Split</c> pre-tokenizer: splits each piece on a pattern (<c>{"Regex": …}</c>, or a literal
/// <c>{"String": …}</c>), with a delimiter behavior and optional inversion. Regexes are compiled once per pattern
/// and shared; they run with .NET semantics (culture-invariant case folding), which agree with the Rust engines
/// on the patterns tokenizers ship (GPT-2, Qwen2/Llama-3 style).
/// </summary>
internal sealed class SplitPreTokenizer : TextPreTokenizer
{
    private static readonly ConcurrentDictionary<string, Regex> Compiled = new(StringComparer.Ordinal);

    private readonly RegexSplitter _splitter;

    public SplitPreTokenizer(RegexSplitter splitter) => _splitter = splitter;

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words) => _splitter.Split(text, words);

    /// <summary>Reads <c>pattern</c>, <c>behavior</c> and <c>invert</c> of a <c>Split</c> object.</summary>
    public static SplitPreTokenizer FromSplitJson(JsonComponent json)
    {
        var pattern = json.GetComponent("pattern") ?? throw json.Invalid($"{json.Path}.pattern is missing");
        string regex;
        if (pattern.GetString("Regex") is string r) regex = r;
        else if (pattern.GetString("String") is string s) regex = Regex.Escape(s);
        else throw pattern.Invalid($"{pattern.Path} must be {{\"Regex\": …}} or {{\"String\": …}}");

        string behaviorName = json.GetRequiredString("behavior");
        var behavior = behaviorName switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw json.Invalid($"{json.Path}.behavior \"{behaviorName}\" is not a split behavior"),
        };
        return new SplitPreTokenizer(new RegexSplitter(GetRegex(regex, json), behavior, json.GetBool("invert", false)));
    }

    private static Regex GetRegex(string pattern, JsonComponent json)
    {
        if (Compiled.TryGetValue(pattern, out var cached)) return cached;
        Regex regex;
        try
        {
            regex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
        }
        catch (ArgumentException e)
        {
            throw new ModelLoadException(
                $"{Path.GetFileName(json.FilePath)}: {json.Path}.pattern is not a regex .NET can run: {e.Message} ({json.FilePath})",
                json.FilePath, null, e);
        }
        return Compiled.GetOrAdd(pattern, regex);
    }
}
