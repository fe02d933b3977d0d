using TokenEmbed.Images;

namespace TokenEmbed;

/// <summary>
/// An image for a multimodal prompt (<see cref="Prompt.FromText(string, IReadOnlyList{ImageInput})"/>,
/// <see cref="Prompt.FromImage(ImageInput, string?)"/>), decoded once to 8-bit RGB. PNG, JPEG, WebP, GIF (first frame) and
/// BMP are read with SkiaSharp; the EXIF orientation is applied and transparency is composited over white, as
/// transformers' <c>load_image</c> and <c>convert_to_rgb</c> do.
/// </summary>
public sealed class ImageInput
{
    private readonly byte[] _rgb;

    private ImageInput(byte[] rgb, int width, int height, string source)
    {
        _rgb = rgb;
        Width = width;
        Height = height;
        Source = source;
    }

    /// <summary>The width in pixels (after the EXIF orientation).</summary>
    public int Width { get; }

    /// <summary>The height in pixels (after the EXIF orientation).</summary>
    public int Height { get; }

    /// <summary>Where the image came from (a path, or a description), for error messages.</summary>
    internal string Source { get; }

    /// <summary>Row-major RGB, 3 bytes a pixel.</summary>
    internal ReadOnlySpan<byte> Rgb => _rgb;

    /// <summary>Decodes an image file.</summary>
    /// <param name="path">The file.</param>
    /// <exception cref="ArgumentException">The file is missing, not an image, or truncated (the message names the file).</exception>
    public static ImageInput FromFile(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ArgumentException($"Image file '{path}' cannot be read: {e.Message}", nameof(path), e);
        }
        var (rgb, w, h) = ImageDecoder.Decode(bytes, $"image file '{path}'", nameof(path));
        return new ImageInput(rgb, w, h, path);
    }

    /// <summary>Decodes an encoded image (PNG, JPEG, WebP, GIF, BMP).</summary>
    /// <param name="encoded">The file's bytes.</param>
    /// <exception cref="ArgumentException">The bytes are not an image, or a truncated one.</exception>
    public static ImageInput FromBytes(ReadOnlyMemory<byte> encoded)
    {
        var (rgb, w, h) = ImageDecoder.Decode(encoded.Span, $"an encoded image of {encoded.Length} bytes", nameof(encoded));
        return new ImageInput(rgb, w, h, $"<{encoded.Length} encoded bytes>");
    }

    /// <summary>An image from raw pixels: row-major RGB, 3 bytes a pixel.</summary>
    /// <param name="pixels">width · height · 3 bytes; copied.</param>
    /// <param name="width">The width in pixels.</param>
    /// <param name="height">The height in pixels.</param>
    /// <exception cref="ArgumentException">The size is not positive or the byte count is not width · height · 3.</exception>
    public static ImageInput FromRgb24(ReadOnlyMemory<byte> pixels, int width, int height)
    {
        if (width <= 0 || height <= 0) throw new ArgumentException($"An image needs a positive size; got {width}×{height}.", nameof(width));
        if ((long)width * height * 3 != pixels.Length)
            throw new ArgumentException($"{width}×{height} RGB pixels are {(long)width * height * 3} bytes; got {pixels.Length}.", nameof(pixels));
        return new ImageInput(pixels.ToArray(), width, height, $"<{width}×{height} RGB pixels>");
    }

    /// <inheritdoc />
    public override string ToString() => $"{Source} ({Width}×{Height})";
}
