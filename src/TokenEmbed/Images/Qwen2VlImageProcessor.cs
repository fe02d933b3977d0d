using TokenEmbed.Models.Layers;
using TokenEmbed.Loading;
using static TorchSharp.torch;

namespace TokenEmbed.Images;

// Port of transformers 5.17 models/qwen2_vl/image_processing_qwen2_vl.py (Qwen2VLImageProcessor, torchvision backend),
// which Qwen3-VL uses (SPEC.md §8.6): convert to RGB, smart_resize within min/max pixels, bicubic antialiased resize,
// rescale + normalize fused in float32, patchify in merge-block order with the frame repeated temporal_patch_size times.

/// <summary>One image ready for the vision tower: its patch rows and grid.</summary>
/// <param name="PixelValues">[GridT·GridH·GridW, C·tp·p·p] row-major float32.</param>
/// <param name="GridT">Frames in temporal patches (1 for an image).</param>
/// <param name="GridH">Height in patches.</param>
/// <param name="GridW">Width in patches.</param>
/// <param name="TokenCount">Image-pad tokens the image takes in the prompt (<c>t·h·w / merge²</c>).</param>
internal sealed record ProcessedImage(float[] PixelValues, int GridT, int GridH, int GridW, int TokenCount);

/// <summary><c>Qwen2VLImageProcessor</c>, configured from <c>preprocessor_config.json</c>.</summary>
internal sealed class Qwen2VlImageProcessor
{
    public const string FileName = "preprocessor_config.json";

    public int PatchSize { get; init; } = 16;
    public int TemporalPatchSize { get; init; } = 2;
    public int MergeSize { get; init; } = 2;
    public long MinPixels { get; init; } = 65536;
    public long MaxPixels { get; init; } = 16777216;
    public float[] Mean { get; init; } = [0.5f, 0.5f, 0.5f];
    public float[] Std { get; init; } = [0.5f, 0.5f, 0.5f];
    public double RescaleFactor { get; init; } = 1 / 255.0;
    public bool DoResize { get; init; } = true;
    public bool DoRescale { get; init; } = true;
    public bool DoNormalize { get; init; } = true;

    /// <summary>
    /// Reads <c>preprocessor_config.json</c> (<c>size.shortest_edge</c> / <c>size.longest_edge</c> are pixel counts, also
    /// spelled <c>min_pixels</c> / <c>max_pixels</c>); without the file, the vision config's patch sizes and Qwen3-VL's
    /// defaults. Patch sizes must agree with the model.
    /// </summary>
    public static Qwen2VlImageProcessor Load(string folder, int patchSize, int temporalPatchSize, int mergeSize)
    {
        var path = FolderPaths.Inside(folder, FileName);
        if (!File.Exists(path)) return new Qwen2VlImageProcessor { PatchSize = patchSize, TemporalPatchSize = temporalPatchSize, MergeSize = mergeSize };
        var c = HfConfig.Load(path);
        var size = c.GetSection("size");
        long Pixels(string sizeKey, string alias, long fallback)
        {
            var v = size?.Has(sizeKey) == true ? size.GetInt(sizeKey, 0) : c.Has(alias) ? c.GetInt(alias, 0) : fallback;
            return v > 0 ? v : throw new ModelLoadException($"'{path}': field 'size.{sizeKey}' ({alias}) must be a positive pixel count, found {v}.", path);
        }
        float[] Triple(string name, float fallback)
        {
            var list = c.GetDoubleList(name);
            if (list == null) return [fallback, fallback, fallback];
            if (list.Count != 3) throw new ModelLoadException($"'{path}': field '{name}' must have 3 values, found {list.Count}.", path);
            return list.Select(v => (float)v).ToArray();
        }
        var p = new Qwen2VlImageProcessor
        {
            PatchSize = c.GetPositiveInt("patch_size", patchSize),
            TemporalPatchSize = c.GetPositiveInt("temporal_patch_size", temporalPatchSize),
            MergeSize = c.GetPositiveInt("merge_size", mergeSize),
            MinPixels = Pixels("shortest_edge", "min_pixels", 65536),
            MaxPixels = Pixels("longest_edge", "max_pixels", 16777216),
            Mean = Triple("image_mean", 0.5f),
            Std = Triple("image_std", 0.5f),
            RescaleFactor = c.GetDouble("rescale_factor", 1 / 255.0),
            DoResize = c.GetBool("do_resize", true),
            DoRescale = c.GetBool("do_rescale", true),
            DoNormalize = c.GetBool("do_normalize", true),
        };
        if (p.PatchSize != patchSize || p.TemporalPatchSize != temporalPatchSize || p.MergeSize != mergeSize)
            throw new ModelLoadException(
                $"'{path}': patch_size {p.PatchSize}, temporal_patch_size {p.TemporalPatchSize}, merge_size {p.MergeSize} disagree with config.json's vision_config ({patchSize}, {temporalPatchSize}, {mergeSize}).", path);
        if (p.MinPixels > p.MaxPixels) throw new ModelLoadException($"'{path}': size.shortest_edge (min pixels) is larger than size.longest_edge (max pixels).", path);
        if (p.Std.Any(s => !(s > 0))) throw new ModelLoadException($"'{path}': field 'image_std' must be positive.", path);
        return p;
    }

    /// <summary>The resized (height, width): multiples of patch·merge within the pixel limits (transformers' <c>smart_resize</c>).</summary>
    /// <exception cref="ArgumentException">The aspect ratio exceeds 200.</exception>
    public (int Height, int Width) SmartResize(int height, int width)
    {
        var factor = PatchSize * MergeSize;
        if (Math.Max(height, width) / (double)Math.Min(height, width) > 200)
            throw new ArgumentException($"An image of {width}×{height} has an aspect ratio above 200, which the model's processor refuses.");
        // Python's round() rounds half to even, as Math.Round does by default.
        long h = (long)Math.Round(height / (double)factor) * factor;
        long w = (long)Math.Round(width / (double)factor) * factor;
        if (h * w > MaxPixels)
        {
            var beta = Math.Sqrt(height * (double)width / MaxPixels);
            h = Math.Max(factor, (long)Math.Floor(height / beta / factor) * factor);
            w = Math.Max(factor, (long)Math.Floor(width / beta / factor) * factor);
        }
        else if (h * w < MinPixels)
        {
            var beta = Math.Sqrt(MinPixels / (height * (double)width));
            h = (long)Math.Ceiling(height * beta / factor) * factor;
            w = (long)Math.Ceiling(width * beta / factor) * factor;
        }
        return ((int)h, (int)w);
    }

    /// <summary>Resizes, normalizes and patchifies one image.</summary>
    public ProcessedImage Process(ImageInput image)
    {
        var (h, w) = DoResize ? SmartResize(image.Height, image.Width) : (image.Height, image.Width);
        var factor = PatchSize * MergeSize;
        if (h % factor != 0 || w % factor != 0)
            throw new ArgumentException($"{image}: with do_resize false the size must be a multiple of {factor}.");
        var values = Resized(image, h, w);                 // [3, h, w] in 0..255
        var (p, m, tp) = (PatchSize, MergeSize, TemporalPatchSize);
        // Rescale + normalize fused in float32: (v − mean/rescale) / (std/rescale), as the torchvision backend does.
        var scale = DoRescale ? (float)(1.0 / RescaleFactor) : 1f;
        var offset = new float[3];
        var divisor = new float[3];
        for (var c = 0; c < 3; c++)
        {
            offset[c] = DoNormalize ? Mean[c] * scale : 0f;
            divisor[c] = DoNormalize ? Std[c] * scale : scale;
        }
        var (gh, gw) = (h / p, w / p);
        var rowLength = 3 * tp * p * p;
        var pixels = new float[(long)gh * gw * rowLength];
        var row = 0;
        for (var br = 0; br < gh / m; br++)
        for (var bc = 0; bc < gw / m; bc++)
        for (var ir = 0; ir < m; ir++)
        for (var ic = 0; ic < m; ic++)
        {
            var (pr, pc) = (br * m + ir, bc * m + ic);
            var o = (long)row * rowLength;
            for (var c = 0; c < 3; c++)
            for (var t = 0; t < tp; t++)
            for (var y = 0; y < p; y++)
            for (var x = 0; x < p; x++)
            {
                var v = values[((long)c * h + pr * p + y) * w + pc * p + x];
                pixels[o++] = (v - offset[c]) / divisor[c];
            }
            row++;
        }
        return new ProcessedImage(pixels, 1, gh, gw, gh * gw / (m * m));
    }

    /// <summary>
    /// The image as float [3, h, w] with integral values 0..255: unchanged at its own size, else resized like torchvision's
    /// <c>resize(uint8, BICUBIC, antialias=True)</c>.
    /// </summary>
    private static float[] Resized(ImageInput image, int h, int w)
    {
        var (H, W) = (image.Height, image.Width);
        var rgb = image.Rgb;
        var chw = new float[3L * H * W];
        for (var y = 0; y < H; y++)
        for (var x = 0; x < W; x++)
        for (var c = 0; c < 3; c++)
            chw[((long)c * H + y) * W + x] = rgb[(y * W + x) * 3 + c];
        if (h == H && w == W) return chw;
        using var scope = NewDisposeScope();
        // torchvision resizes uint8 images with libtorch's separable uint8 kernel: the horizontal pass first, its result
        // rounded and saturated to 0..255, then the vertical pass. Doing the two passes the same way (each antialiased
        // bicubic, a = −0.5) reproduces it where bicubic overshoots at sharp edges.
        var img = tensor(chw, [1, 3, H, W]);
        if (w != W) img = nn.functional.interpolate(img, [H, w], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true).round().clamp(Ops.D(0), Ops.D(255));
        if (h != H) img = nn.functional.interpolate(img, [h, w], mode: InterpolationMode.Bicubic, align_corners: false, antialias: true).round().clamp(Ops.D(0), Ops.D(255));
        return img.contiguous().data<float>().ToArray();
    }
}
