namespace TokenEmbed;

/// <summary>
/// One input: a text, or token ids (vLLM's <c>TokensPrompt</c>) that skip the tokenizer, optionally with images for
/// multimodal models (Qwen3-VL family).
/// </summary>
public sealed class Prompt
{
    private Prompt(string? text, int[]? tokenIds, ImageInput[] images, bool imageFirst = false)
    {
        Text = text;
        TokenIds = tokenIds;
        Images = images;
        ImageFirst = imageFirst;
    }

    /// <summary>The text, or <see langword="null"/> for a token-id prompt.</summary>
    public string? Text { get; }

    /// <summary>The token ids, or <see langword="null"/> for a text prompt.</summary>
    public IReadOnlyList<int>? TokenIds { get; }

    /// <summary>The prompt's images, in placeholder order; empty for text prompts.</summary>
    public IReadOnlyList<ImageInput> Images { get; }

    /// <summary>Made by <see cref="FromImage"/>: the model's image placeholder goes in front of <see cref="Text"/>.</summary>
    internal bool ImageFirst { get; }

    /// <summary>A text prompt.</summary>
    /// <param name="text">The text to tokenize; must not be null.</param>
    public static Prompt FromText(string text) => new(text ?? throw new ArgumentNullException(nameof(text)), null, []);

    /// <summary>
    /// A text prompt with images: <paramref name="text"/> holds the model's image placeholder once per image (for
    /// Qwen3-VL <c>&lt;|vision_start|&gt;&lt;|image_pad|&gt;&lt;|vision_end|&gt;</c>); each image-pad token is expanded to
    /// the image's token count.
    /// </summary>
    /// <param name="text">The text, with one placeholder per image.</param>
    /// <param name="images">The images, in placeholder order.</param>
    public static Prompt FromText(string text, IReadOnlyList<ImageInput> images)
    {
        ArgumentNullException.ThrowIfNull(text);
        return new Prompt(text, null, Checked(images));
    }

    /// <summary>A token-id prompt, used as given (no special tokens are added).</summary>
    /// <param name="tokenIds">The ids; copied.</param>
    public static Prompt FromTokenIds(IReadOnlyList<int> tokenIds)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        return new Prompt(null, tokenIds.ToArray(), []);
    }

    /// <summary>
    /// A token-id prompt with images: one image-pad id per image (expanded to the image's token count), or the already
    /// expanded run of exactly that many image-pad ids.
    /// </summary>
    /// <param name="tokenIds">The ids; copied.</param>
    /// <param name="images">The images, in order.</param>
    public static Prompt FromTokenIds(IReadOnlyList<int> tokenIds, IReadOnlyList<ImageInput> images)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        return new Prompt(null, tokenIds.ToArray(), Checked(images));
    }

    /// <summary>
    /// An image, optionally followed by text: the model's image placeholder in front of <paramref name="text"/>, no chat
    /// template (vLLM's rule for image inputs of <c>score</c>).
    /// </summary>
    /// <param name="image">The image.</param>
    /// <param name="text">Text after the image, or null.</param>
    public static Prompt FromImage(ImageInput image, string? text = null)
    {
        ArgumentNullException.ThrowIfNull(image);
        return new Prompt(text ?? "", null, [image], imageFirst: true);
    }

    private static ImageInput[] Checked(IReadOnlyList<ImageInput> images)
    {
        ArgumentNullException.ThrowIfNull(images);
        var copy = images.ToArray();
        for (var i = 0; i < copy.Length; i++)
            if (copy[i] is null) throw new ArgumentNullException(nameof(images), $"Image {i} is null.");
        return copy;
    }

    /// <summary>A text prompt.</summary>
    /// <param name="text">The text to tokenize.</param>
    public static implicit operator Prompt(string text) => FromText(text);

    /// <inheritdoc />
    public override string ToString() =>
        (Text ?? $"<{TokenIds!.Count} token ids>") + (Images.Count > 0 ? $" + {Images.Count} image(s)" : "");
}
