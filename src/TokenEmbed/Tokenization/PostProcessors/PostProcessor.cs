using System.Text.Json;

namespace TokenEmbed.Tokenization;

/// <summary>A Hugging Face post-processor, as applied to a single sequence with special tokens requested.</summary>
internal abstract class PostProcessor
{
    /// <summary>How many ids <see cref="Apply"/> adds around a single sequence.</summary>
    public abstract int NumSpecialTokensToAdd { get; }

    /// <summary>The ids of a single sequence with the special tokens added.</summary>
    public abstract int[] Apply(ReadOnlySpan<int> ids);

    /// <summary>
    /// Builds the post-processor a <c>tokenizer.json</c> <c>post_processor</c> object describes (null for none);
    /// an unsupported type throws <see cref="ModelLoadException"/>.
    /// </summary>
    public static PostProcessor? FromJson(JsonComponent? json)
    {
        if (json is null) return null;
        switch (json.Type)
        {
            case "TemplateProcessing":
                return TemplatePostProcessor.FromTemplateJson(json);
            case "BertProcessing":
            case "RobertaProcessing":
                // Single sequence: cls $A sep (Roberta's offset trimming does not change ids).
                return new TemplatePostProcessor([ReadIdPair(json, "cls"), null, ReadIdPair(json, "sep")]);
            case "ByteLevel":
                // Only trims offsets.
                return new TemplatePostProcessor([null]);
            case "Sequence":
                var parts = new List<PostProcessor>();
                foreach (var item in json.GetComponents("processors"))
                {
                    var p = FromJson(item);
                    if (p is not null) parts.Add(p);
                }
                return new SequencePostProcessor(parts);
            default:
                throw json.Unsupported("post-processor");
        }
    }

    // ["[CLS]", 101]
    private static int[] ReadIdPair(JsonComponent json, string name)
    {
        var e = json.Get(name, JsonValueKind.Array) ?? throw json.Invalid($"{json.Path}.{name} is missing");
        if (e.GetArrayLength() != 2 || e[1].ValueKind != JsonValueKind.Number || !e[1].TryGetInt32(out int id))
            throw json.Invalid($"{json.Path}.{name} must be [token, id]");
        return [id];
    }
}
