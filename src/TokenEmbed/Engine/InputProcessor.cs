using TokenEmbed.Images;
using TokenEmbed.Models;
using TokenEmbed.Tokenization;

namespace TokenEmbed.Engine;

/// <summary>A prompt as the model runs it: token ids (image pads expanded) and its processed images, in order.</summary>
/// <param name="Ids">The token ids.</param>
/// <param name="Images">The processed images, in placeholder order.</param>
/// <param name="Attend">Per token, whether it is attended (PyLate's unattended query expansion); null = every token.</param>
/// <param name="Keep">Per token, whether its vector is returned (PyLate's document skiplist); null = every vector.</param>
internal sealed record TokenizedPrompt(int[] Ids, ProcessedImage[] Images, bool[]? Attend = null, bool[]? Keep = null);

/// <summary>
/// The input stage: turns each <see cref="Prompt"/> into what the model runs on (tokenize once, expand image placeholders,
/// truncate once, validate against the vocabulary and the length limit). Batching and the forward come after it.
/// </summary>
internal sealed class InputProcessor(PoolingModel model)
{
    private readonly QueryDocumentEncoder _modes = new(model);

    /// <summary>The text that stands for one image in front of a <see cref="Prompt.FromImage"/> prompt (Qwen3-VL's tokens).</summary>
    private const string ImagePlaceholder = "<|vision_start|><|image_pad|><|vision_end|>";

    /// <summary>The model's tokenizer, or a clear error when the folder has none.</summary>
    public TextTokenizer RequireTokenizer() => model.Tokenizer ?? throw new InvalidOperationException(
        "This model folder has no tokenizer (tokenizer.json or vocab.txt), so text prompts cannot be encoded; " +
        "pass token ids with Prompt.FromTokenIds.");

    /// <summary>Every prompt, processed as <paramref name="p"/> asks; errors name the prompt index.</summary>
    public TokenizedPrompt[] Process(IReadOnlyList<Prompt> prompts, PoolingParams? p)
    {
        var keep = KeepCount(p);
        var result = new TokenizedPrompt[prompts.Count];
        for (var i = 0; i < prompts.Count; i++)
            result[i] = Process(prompts[i] ?? throw new ArgumentNullException(nameof(prompts), $"Prompt {i} is null."), i, keep, p);
        return result;
    }

    /// <summary>The folder's token pooling of documents (PyLate's or sentence-transformers v6's, and a module's default factor).</summary>
    public TokenPoolingDefaults DocumentPooling => _modes.Settings.Pooling ?? TokenPoolingDefaults.PyLate;

    private TokenizedPrompt ModeText(string text, InputType type)
    {
        RequireTokenizer();
        return _modes.EncodeText(text, type);
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

    private TokenizedPrompt Process(Prompt prompt, int index, int? keep, PoolingParams? p)
    {
        if (p?.InputType is InputType.Query or InputType.Document)
        {
            if (prompt.Images.Count > 0)
                throw new ArgumentException($"Prompt {index}: query / document encoding takes text or token ids, not images.", nameof(prompt));
            if (keep is not null)
                throw new ArgumentException("PoolingParams.TruncatePromptTokens does not apply with InputType Query or Document (their lengths are query_length / document_length).", nameof(p));
            var encoded = prompt.Text is { } t
                ? ModeText(t, p.InputType.Value)
                : _modes.Encode(prompt.TokenIds!.ToArray(), hasSpecials: true, p.InputType.Value);
            return Validated(encoded, prompt, index);
        }
        var images = ProcessImages(prompt, index);
        int[] ids;
        if (prompt.Text is { } text)
        {
            var tok = RequireTokenizer();
            // One tokenization: the content without special tokens; truncation cuts it from the left (HF
            // truncation_side="left") so that the special tokens the post-processor adds are kept.
            var content = tok.Encode(prompt.ImageFirst ? ImagePlaceholder + text : text, addSpecialTokens: false);
            var specials = tok.NumSpecialTokensToAdd;
            if (images.Length == 0 && keep is { } k && content.Length + specials > k)
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
            if (images.Length == 0 && keep is { } k && ids.Length > k) ids = ids.AsSpan(ids.Length - k).ToArray();
        }
        if (images.Length > 0 || model.Backbone is IVisionBackbone)
            ids = ExpandImages(ids, images, prompt.Text != null, index, keep);
        return Validated(new TokenizedPrompt(ids, images), prompt, index);
    }

    /// <summary>Token-id prompts, and tokenizers whose vocabulary is larger than the model's embedding table; length limits.</summary>
    private TokenizedPrompt Validated(TokenizedPrompt t, Prompt prompt, int index)
    {
        foreach (var id in t.Ids)
            if ((uint)id >= (uint)model.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(prompt), id,
                    $"Prompt {index} has token id {id}{(prompt.Text != null ? " (from the tokenizer)" : "")}, outside the model's vocabulary [0, {model.VocabSize}).");
        if (t.Ids.Length == 0) throw new ArgumentException($"Prompt {index} has no tokens.", nameof(prompt));
        if (t.Ids.Length > model.MaxModelLength) throw new PromptTooLongException(t.Ids.Length, model.MaxModelLength, index);
        return t;
    }

    private ProcessedImage[] ProcessImages(Prompt prompt, int index)
    {
        if (prompt.Images.Count == 0) return [];
        if (model.Images is not { } processor)
            throw new ArgumentException(
                $"Prompt {index} has {prompt.Images.Count} image(s), but {model.Architecture.Name} takes text only (it has no vision tower).", nameof(prompt));
        var result = new ProcessedImage[prompt.Images.Count];
        for (var j = 0; j < result.Length; j++)
        {
            try
            {
                result[j] = processor.Process(prompt.Images[j]);
            }
            catch (ArgumentException e)
            {
                throw new ArgumentException($"Prompt {index}, image {j} ({prompt.Images[j]}): {e.Message}", nameof(prompt), e);
            }
        }
        return result;
    }

    /// <summary>
    /// Expands image placeholders: a text prompt's every image-pad id stands for one image; a token-id prompt's run of pads
    /// is either one pad (expanded) or exactly the image's token count. The counts must match the images, and truncation
    /// (keep the last k) may not cut into an image.
    /// </summary>
    private int[] ExpandImages(int[] ids, ProcessedImage[] images, bool fromText, int index, int? keep)
    {
        var pad = ((IVisionBackbone)model.Backbone).ImageTokenId;
        var result = new List<int>(ids.Length + images.Sum(i => i.TokenCount));
        var next = 0;
        for (var j = 0; j < ids.Length;)
        {
            if (ids[j] != pad) { result.Add(ids[j++]); continue; }
            var run = 1;
            while (j + run < ids.Length && ids[j + run] == pad) run++;
            if (next >= images.Length)
                throw new ArgumentException($"Prompt {index} has more image placeholders than its {images.Length} image(s).", "prompt");
            if (fromText || run == 1)
            {
                result.AddRange(Enumerable.Repeat(pad, images[next++].TokenCount));
                j++;
            }
            else if (run == images[next].TokenCount)
            {
                result.AddRange(Enumerable.Repeat(pad, run));
                next++;
                j += run;
            }
            else
            {
                throw new ArgumentException(
                    $"Prompt {index}: a run of {run} image-pad ids, but image {next} takes {images[next].TokenCount} tokens (give one pad id per image, or exactly that many).", "prompt");
            }
        }
        if (next != images.Length)
            throw new ArgumentException($"Prompt {index} has {next} image placeholder(s) ({ImagePlaceholder}) but {images.Length} image(s).", "prompt");
        if (keep is { } k && result.Count > k)
        {
            var cut = result.Count - k;
            if (result.Take(cut).Contains(pad))
                throw new ArgumentOutOfRangeException("poolingParams", k,
                    $"Prompt {index}: PoolingParams.TruncatePromptTokens ({k}) would cut into an image (the prompt has {result.Count} tokens with its images).");
            return result.Skip(cut).ToArray();
        }
        return result.ToArray();
    }
}
