using System.Buffers.Binary;
using NUnit.Framework;
using SkiaSharp;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Api;

/// <summary>Image decoding: formats, broken input, EXIF orientation, transparency; and image prompts' errors.</summary>
public sealed class ImageInputTests
{
    private static string VlFolder => TestPaths.Fixture("goldens", "qwen3_vl");

    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    /// <summary>A 5×3 RGBA test pattern with distinct pixels, one half-transparent.</summary>
    private static SKBitmap Pattern()
    {
        var bmp = new SKBitmap(new SKImageInfo(5, 3, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (var y = 0; y < 3; y++)
        for (var x = 0; x < 5; x++)
            bmp.SetPixel(x, y, new SKColor((byte)(40 * x + 10), (byte)(70 * y + 5), (byte)(20 * x + 30 * y), x == 4 && y == 2 ? (byte)128 : (byte)255));
        return bmp;
    }

    private static byte[] Encode(SKBitmap bmp, SKEncodedImageFormat format, int quality = 100)
    {
        using var image = SKImage.FromBitmap(bmp);
        using var data = image.Encode(format, quality);
        return data.ToArray();
    }

    [Test]
    public void PngDecodesExactlyAndCompositesAlphaOverWhiteAsPil()
    {
        using var bmp = Pattern();
        var image = ImageInput.FromBytes(Encode(bmp, SKEncodedImageFormat.Png));
        Assert.That((image.Width, image.Height), Is.EqualTo((5, 3)));
        var rgb = image.Rgb.ToArray();
        for (var y = 0; y < 3; y++)
        for (var x = 0; x < 4; x++)
            Assert.That(rgb.Skip((y * 5 + x) * 3).Take(3), Is.EqualTo(new[] { (byte)(40 * x + 10), (byte)(70 * y + 5), (byte)(20 * x + 30 * y) }), $"pixel ({x}, {y})");
        // (170, 145, 140) at alpha 128 over white, with PIL's alpha_composite rounding: round(v·a/255 + 255·(1 − a/255)).
        var expected = new[] { 170, 145, 140 }.Select(v => (byte)Math.Round((v * 128 + 255 * 127) / 255.0)).ToArray();
        Assert.That(rgb.Skip((2 * 5 + 4) * 3).Take(3), Is.EqualTo(expected));
    }

    [Test]
    public void JpegRoundTripsWithinItsLossAndOtherFormatsDecode()
    {
        // An opaque, smooth 32×24 gradient: JPEG at quality 100 keeps it within a few levels.
        using var bmp = new SKBitmap(new SKImageInfo(32, 24, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (var y = 0; y < 24; y++)
        for (var x = 0; x < 32; x++)
            bmp.SetPixel(x, y, new SKColor((byte)(6 * x + 20), (byte)(8 * y + 10), (byte)(3 * (x + y) + 40), 255));
        var png = ImageInput.FromBytes(Encode(bmp, SKEncodedImageFormat.Png)).Rgb.ToArray();
        var jpeg = ImageInput.FromBytes(Encode(bmp, SKEncodedImageFormat.Jpeg, 100));
        Assert.That((jpeg.Width, jpeg.Height), Is.EqualTo((32, 24)));
        var diffs = png.Zip(jpeg.Rgb.ToArray()).Select(p => Math.Abs(p.First - p.Second)).ToArray();
        TestContext.Out.WriteLine($"JPEG q100 vs PNG on a gradient: max {diffs.Max()} levels, mean {diffs.Average():F2}");
        Assert.That(diffs.Max(), Is.LessThanOrEqualTo(8), "JPEG is lossy, but close on a smooth image");
        var webp = ImageInput.FromBytes(Encode(bmp, SKEncodedImageFormat.Webp, 100));
        Assert.That((webp.Width, webp.Height), Is.EqualTo((32, 24)));
    }

    /// <summary>EXIF orientation 6 (rotate 90° clockwise to display) swaps the size and moves the pixels as PIL's exif_transpose does.</summary>
    [Test]
    public void ExifOrientationIsApplied()
    {
        using var bmp = Pattern();
        var jpeg = Encode(bmp, SKEncodedImageFormat.Jpeg, 100);
        var upright = ImageInput.FromBytes(jpeg);
        var rotated = ImageInput.FromBytes(WithExifOrientation(jpeg, 6));
        Assert.That((rotated.Width, rotated.Height), Is.EqualTo((3, 5)));
        var (u, r) = (upright.Rgb.ToArray(), rotated.Rgb.ToArray());
        // Rotated 90° clockwise: output (x, y) = stored (y, H − 1 − x), H = 3.
        for (var y = 0; y < 5; y++)
        for (var x = 0; x < 3; x++)
            Assert.That(r.Skip((y * 3 + x) * 3).Take(3), Is.EqualTo(u.Skip(((2 - x) * 5 + y) * 3).Take(3)), $"pixel ({x}, {y})");
    }

    /// <summary>Inserts an APP1 Exif segment with one Orientation entry right after the JPEG's SOI marker.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, ushort orientation)
    {
        var tiff = new byte[8 + 2 + 12 + 4];
        "II"u8.CopyTo(tiff);
        BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(2), 42);
        BinaryPrimitives.WriteUInt32LittleEndian(tiff.AsSpan(4), 8);
        BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(8), 1);             // one entry
        BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(10), 0x0112);      // Orientation
        BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(12), 3);           // SHORT
        BinaryPrimitives.WriteUInt32LittleEndian(tiff.AsSpan(14), 1);
        BinaryPrimitives.WriteUInt16LittleEndian(tiff.AsSpan(18), orientation);
        var payload = "Exif\0\0"u8.ToArray().Concat(tiff).ToArray();
        var segment = new byte[4 + payload.Length];
        segment[0] = 0xFF;
        segment[1] = 0xE1;
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(2), (ushort)(payload.Length + 2));
        payload.CopyTo(segment, 4);
        return jpeg.Take(2).Concat(segment).Concat(jpeg.Skip(2)).ToArray();
    }

    [Test]
    public void BrokenInputIsAnArgumentExceptionNamingIt()
    {
        using var bmp = Pattern();
        var png = Encode(bmp, SKEncodedImageFormat.Png);
        Assert.That(() => ImageInput.FromBytes("not an image at all"u8.ToArray()), Throws.ArgumentException.With.Message.Contains("not an image"));
        Assert.That(() => ImageInput.FromBytes(png.AsMemory(0, png.Length / 2)), Throws.ArgumentException, "truncated");
        Assert.That(() => ImageInput.FromBytes(ReadOnlyMemory<byte>.Empty), Throws.ArgumentException.With.Message.Contains("empty"));
        using var f = new TempFolder();
        File.WriteAllText(f.File("x.png"), "text");
        Assert.That(() => ImageInput.FromFile(f.File("x.png")), Throws.ArgumentException.With.Message.Contains("x.png"));
        Assert.That(() => ImageInput.FromFile(f.File("missing.png")), Throws.ArgumentException.With.Message.Contains("missing.png"));
        Assert.That(() => ImageInput.FromRgb24(new byte[11], 2, 2), Throws.ArgumentException.With.Message.Contains("12 bytes"));
        Assert.That(() => ImageInput.FromRgb24(new byte[0], 0, 2), Throws.ArgumentException);
    }

    [Test]
    public void FromRgb24EqualsTheDecodedPng()
    {
        var png = ImageInput.FromFile(Path.Combine(VlFolder, "image.png"));
        var raw = ImageInput.FromRgb24(png.Rgb.ToArray(), png.Width, png.Height);
        using var llm = new Llm(VlFolder, new LlmOptions { Device = "cpu" });
        int[] ids = [5, 500, 502, 501, 9];
        var a = llm.Encode(Prompt.FromTokenIds(ids, [png]), PoolingTask.TokenEmbed)[0].Outputs.Data;
        var b = llm.Encode(Prompt.FromTokenIds(ids, [raw]), PoolingTask.TokenEmbed)[0].Outputs.Data;
        Assert.That(b, Is.EqualTo(a));
    }

    [Test]
    public void ImagePromptErrorsNameThePrompt()
    {
        var image = ImageInput.FromFile(Path.Combine(VlFolder, "image.png"));
        using (var text = new Llm(TestPaths.Fixture("goldens", "qwen3"), new LlmOptions { Device = "cpu" }))
            Assert.That(() => text.Encode([Prompt.FromTokenIds([1, 2]), Prompt.FromTokenIds([1, 2], [image])], PoolingTask.TokenEmbed),
                Throws.ArgumentException.With.Message.Contains("Prompt 1").And.Message.Contains("text only"));
        using var llm = new Llm(VlFolder, new LlmOptions { Device = "cpu" });
        Assert.That(() => llm.Encode(Prompt.FromTokenIds([5, 502, 9, 502], [image]), PoolingTask.TokenEmbed),
            Throws.ArgumentException.With.Message.Contains("Prompt 0").And.Message.Contains("more image placeholders"));
        Assert.That(() => llm.Encode(Prompt.FromTokenIds([5, 9], [image]), PoolingTask.TokenEmbed),
            Throws.ArgumentException.With.Message.Contains("0 image placeholder(s)"));
        Assert.That(() => llm.Encode(Prompt.FromTokenIds([5, 502, 502, 9], [image]), PoolingTask.TokenEmbed),
            Throws.ArgumentException.With.Message.Contains("run of 2 image-pad ids"));
        Assert.That(() => llm.Encode(Prompt.FromTokenIds([5, 502, 9, 8, 7], [image]), PoolingTask.TokenEmbed, new PoolingParams { TruncatePromptTokens = 4 }),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("cut into an image"));
        Assert.That(() => llm.Encode(Prompt.FromText("a"), PoolingTask.TokenEmbed), Throws.InvalidOperationException, "no tokenizer in the golden folder");
    }
}
