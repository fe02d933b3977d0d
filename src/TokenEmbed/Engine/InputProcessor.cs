using TokenEmbed.Models;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Engine;

/// <summary>
/// The input stage: turns each <see cref="Prompt"/> into the token ids the model runs on (tokenize once, truncate once,
/// validate against the vocabulary and the length limit). Batching and the forward come after it; an image stage sits
/// beside it.
/// </summary>
internal sealed class InputProcessor(PoolingModel model)
{
    /// <summary>The model's tokenizer, or a clear error when the folder has none.</summary>
    public TextTokenizer RequireTokenizer() => model.Tokenizer ?? throw new InvalidOperationException(
        "This model folder has no tokenizer (tokenizer.json or vocab.txt), so text prompts cannot be encoded; " +
        "pass token ids with Prompt.FromTokenIds.");

    /// <summary>Token ids for every prompt, truncated as <paramref name="p"/> asks; errors name the prompt index.</summary>
    public int[][] Process(IReadOnlyList<Prompt> prompts, PoolingParams? p)
    {
        var keep = KeepCount(p);
        var result = new int[prompts.Count][];
        for (var i = 0; i < prompts.Count; i++)
            result[i] = Process(prompts[i] ?? throw new ArgumentNullException(nameof(prompts), $"Prompt {i} is null."), i, keep, p);
        return result;
    }

    /// <summary>The most tokens a prompt keeps (null = no truncation), after checking <see cref="PoolingParams.TruncatePromptTokens"/>.</summary>
    private int? KeepCount(PoolingParams? p)
    {
        var truncate = p?.TruncatePromptTokens;
        if (truncate is { } tv && (tv == 0 || tv < -1))
            throw new ArgumentOutOfRangeException(nameof(p), tv, "PoolingParams.TruncatePromptTokens must be -1 (the model's maximum) or a positive token count.");
        if (truncate > model.MaxModelLength)
            throw new ArgumentOutOfRangeException(nameof(p), truncate,
                $"PoolingParams.TruncatePromptTokens ({truncate}) is larger than the model's maximum length ({model.MaxModelLength}).");
        return truncate == -1 ? model.MaxModelLength : truncate;
    }

    private int[] Process(Prompt prompt, int index, int? keep, PoolingParams? p)
    {
        int[] ids;
        if (prompt.Text is { } text)
        {
            var tok = RequireTokenizer();
            // One tokenization: the content without special tokens, truncated from the left (HF truncation_side="left")
            // so that the special tokens the post-processor adds are kept.
            var content = tok.Encode(text, addSpecialTokens: false);
            var specials = tok.NumSpecialTokensToAdd;
            if (keep is { } k && content.Length + specials > k)
            {
                if (k <= specials)
                    throw new ArgumentOutOfRangeException(nameof(p), k,
                        $"PoolingParams.TruncatePromptTokens ({k}) leaves no room for content next to the {specials} special tokens.");
                ids = tok.ApplyPostProcessor(content.AsSpan(content.Length - (k - specials)));
            }
            else
            {
                ids = tok.ApplyPostProcessor(content);
            }
        }
        else
        {
            ids = prompt.TokenIds is int[] arr ? arr : prompt.TokenIds!.ToArray();
            if (keep is { } k && ids.Length > k) ids = ids.AsSpan(ids.Length - k).ToArray();
        }
        // Token-id prompts, and tokenizers whose vocabulary is larger than the model's embedding table.
        foreach (var id in ids)
            if ((uint)id >= (uint)model.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(prompt), id,
                    $"Prompt {index} has token id {id}{(prompt.Text != null ? " (from the tokenizer)" : "")}, outside the model's vocabulary [0, {model.VocabSize}).");
        if (ids.Length == 0) throw new ArgumentException($"Prompt {index} has no tokens.", nameof(prompt));
        if (ids.Length > model.MaxModelLength) throw new PromptTooLongException(ids.Length, model.MaxModelLength, index);
        return ids;
    }
}
