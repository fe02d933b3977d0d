using System.Runtime.InteropServices;
using SkiaSharp;

namespace TokenEmbed.Images;

/// <summary>Decodes encoded images with SkiaSharp to 8-bit RGB, the way transformers loads them.</summary>
internal static class ImageDecoder
{
    /// <summary>The most pixels a decoded image may have (a decompression bomb is refused before decoding).</summary>
    public const long MaxPixels = 1L << 28;

    /// <summary>
    /// RGB bytes, width and height: decoded unpremultiplied RGBA (GIF: the first frame), the EXIF orientation applied
    /// (<c>ImageOps.exif_transpose</c>), alpha composited over white with PIL's integer arithmetic (<c>convert_to_rgb</c>).
    /// </summary>
    public static (byte[] Rgb, int Width, int Height) Decode(ReadOnlySpan<byte> encoded, string what, string paramName)
    {
        if (encoded.IsEmpty) throw new ArgumentException($"{Capital(what)} is empty.", paramName);
        using var data = SKData.CreateCopy(encoded);
        using var codec = SKCodec.Create(data) ?? throw new ArgumentException($"{Capital(what)} is not an image SkiaSharp can read (PNG, JPEG, WebP, GIF, BMP).", paramName);
        var (w, h) = (codec.Info.Width, codec.Info.Height);
        if (w <= 0 || h <= 0 || (long)w * h > MaxPixels)
            throw new ArgumentException($"{Capital(what)} is {w}×{h} pixels, outside 1 to {MaxPixels} pixels.", paramName);
        var info = new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        var rgba = new byte[(long)w * h * 4];
        var handle = GCHandle.Alloc(rgba, GCHandleType.Pinned);
        SKCodecResult result;
        try
        {
            result = codec.GetPixels(info, handle.AddrOfPinnedObject());
        }
        finally
        {
            handle.Free();
        }
        if (result != SKCodecResult.Success)
            throw new ArgumentException($"{Capital(what)} could not be decoded ({result}{(result == SKCodecResult.IncompleteInput ? ": the data is truncated" : "")}).", paramName);
        var (oriented, ow, oh) = Orient(rgba, w, h, codec.EncodedOrigin);
        return (CompositeOverWhite(oriented), ow, oh);
    }

    private static string Capital(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..];

    /// <summary>Applies an EXIF orientation to RGBA pixels (the 8 origins: flips, rotations, transposes).</summary>
    private static (byte[] Pixels, int Width, int Height) Orient(byte[] src, int w, int h, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft or 0) return (src, w, h);
        var swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var (ow, oh) = swap ? (h, w) : (w, h);
        var dst = new byte[src.Length];
        for (var y = 0; y < oh; y++)
        for (var x = 0; x < ow; x++)
        {
            // (x, y) in the output comes from (sx, sy) in the stored image.
            var (sx, sy) = origin switch
            {
                SKEncodedOrigin.TopRight => (w - 1 - x, y),            // mirrored horizontally
                SKEncodedOrigin.BottomRight => (w - 1 - x, h - 1 - y), // rotated 180
                SKEncodedOrigin.BottomLeft => (x, h - 1 - y),          // mirrored vertically
                SKEncodedOrigin.LeftTop => (y, x),                     // transposed
                SKEncodedOrigin.RightTop => (y, h - 1 - x),            // rotated 90 clockwise to display
                SKEncodedOrigin.RightBottom => (w - 1 - y, h - 1 - x), // transversed
                SKEncodedOrigin.LeftBottom => (w - 1 - y, x),          // rotated 90 counter-clockwise to display
                _ => (x, y),
            };
            Buffer.BlockCopy(src, (sy * w + sx) * 4, dst, (y * ow + x) * 4, 4);
        }
        return (dst, ow, oh);
    }

    /// <summary>
    /// RGBA → RGB over an opaque white background, as PIL's <c>Image.alpha_composite</c> computes it (7-bit fixed point,
    /// <c>SHIFTFORDIV255</c>), which transformers' <c>convert_to_rgb</c> uses.
    /// </summary>
    internal static byte[] CompositeOverWhite(byte[] rgba)
    {
        var n = rgba.Length / 4;
        var rgb = new byte[n * 3];
        for (var i = 0; i < n; i++)
        {
            int a = rgba[4 * i + 3];
            for (var c = 0; c < 3; c++)
            {
                int v = rgba[4 * i + c];
                if (a == 255) { rgb[3 * i + c] = (byte)v; continue; }
                // outa255 = 255·255; coef1 = a·128; coef2 = (255 − a)·128 (PRECISION_BITS = 7).
                var tmp = v * a * 128 + 255 * (255 - a) * 128 + (0x80 << 7);
                var div = ((tmp >> 8) + tmp) >> 8;
                rgb[3 * i + c] = (byte)Math.Clamp(div >> 7, 0, 255);
            }
        }
        return rgb;
    }
}
