using NUnit.Framework;
using TokenEmbed.Images;
using TokenEmbed.Loading;
using TokenEmbed.Models;
using TokenEmbed.Models.Qwen3Vl;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// Qwen3-VL against transformers 5.17 (../shared/fixtures/goldens/qwen3_vl, SPEC.md §8): text only, one image, and a
/// padded batch of two images of different sizes, through the public API from the PNG files; and the stored pixel values
/// through the backbone, with the vision intermediates.
/// </summary>
[NonParallelizable]
public sealed class Qwen3VlTests
{
    internal static string Folder => TestPaths.Fixture("goldens", "qwen3_vl");
    private const int Hidden = 64;

    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    internal sealed record Golden(long[] Ids, long[] Mask, int B, int T, float[] Hidden, SafeTensorsFile File) : IDisposable
    {
        public int[] Row(int r) => Reference.ValidIds(Ids, Mask, T, r);
        public float[] Expected(int r) => Reference.Rows(Hidden, T, Qwen3VlTests.Hidden, r, Row(r).Length);
        public void Dispose() => File.Dispose();
    }

    internal static Golden Read(string name)
    {
        var f = SafeTensorsFile.Open(Path.Combine(Folder, name));
        var (ids, shape) = Reference.ReadInt64(f, "input_ids");
        var (mask, _) = Reference.ReadInt64(f, "attention_mask");
        var (hidden, _) = Reference.ReadFloat32(f, "last_hidden_state");
        return new Golden(ids, mask, (int)shape[0], (int)shape[1], hidden, f);
    }

    private static Llm Open() => new(Folder, new LlmOptions { Device = "cpu" });
    private static readonly PoolingParams Raw = new() { Normalize = false };
    private static ImageInput Png(string name) => ImageInput.FromFile(Path.Combine(Folder, name));

    [Test]
    public void TextOnlyMatchesTransformers()
    {
        using var g = Read("golden.safetensors");
        using var llm = Open();
        Assert.That(llm.Architecture, Is.EqualTo("Qwen3VLModel"));
        var outputs = llm.Encode(Enumerable.Range(0, g.B).Select(r => Prompt.FromTokenIds(g.Row(r))).ToArray(), PoolingTask.TokenEmbed, Raw);
        var max = Enumerable.Range(0, g.B).Max(r => Reference.MaxAbsDiff(outputs[r].Outputs.Data, g.Expected(r)));
        TestContext.Out.WriteLine($"qwen3_vl text only: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void OneImageFromThePngMatchesTransformers()
    {
        using var g = Read("golden_image.safetensors");
        using var llm = Open();
        var o = llm.Encode(Prompt.FromTokenIds(g.Row(0), [Png("image.png")]), PoolingTask.TokenEmbed, Raw)[0];
        Assert.That(o.PromptTokenIds, Is.EqualTo(g.Row(0)));
        var max = Reference.MaxAbsDiff(o.Outputs.Data, g.Expected(0));
        TestContext.Out.WriteLine($"qwen3_vl one image (from image.png): max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    /// <summary>One image-pad id per image is expanded to the image's token count.</summary>
    [Test]
    public void OnePadIdPerImageIsExpanded()
    {
        using var g = Read("golden_image.safetensors");
        using var llm = Open();
        var ids = g.Row(0).ToList();
        var first = ids.IndexOf(502);
        ids.RemoveRange(first, 3);                      // 4 pads → 1
        var o = llm.Encode(Prompt.FromTokenIds(ids, [Png("image.png")]), PoolingTask.TokenEmbed, Raw)[0];
        Assert.That(o.PromptTokenIds, Is.EqualTo(g.Row(0)));
        Assert.That(Reference.MaxAbsDiff(o.Outputs.Data, g.Expected(0)), Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void APaddedBatchOfTwoImageSizesMatchesTransformers()
    {
        using var g = Read("golden_image_batch.safetensors");
        using var llm = Open();
        var prompts = new[] { Prompt.FromTokenIds(g.Row(0), [Png("image.png")]), Prompt.FromTokenIds(g.Row(1), [Png("image2.png")]) };
        var outputs = llm.Encode(prompts, PoolingTask.TokenEmbed, Raw);
        var max = Enumerable.Range(0, 2).Max(r => Reference.MaxAbsDiff(outputs[r].Outputs.Data, g.Expected(r)));
        TestContext.Out.WriteLine($"qwen3_vl batch of two images (64×64, 64×96), one row padded: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        // Batched (with a text-only prompt mixed in) equals one by one.
        using var text = Read("golden.safetensors");
        var mixed = llm.Encode([prompts[0], Prompt.FromTokenIds(text.Row(1)), prompts[1]], PoolingTask.TokenEmbed, Raw);
        var alone = new[] { prompts[0], Prompt.FromTokenIds(text.Row(1)), prompts[1] }.Select(p => llm.Encode(p, PoolingTask.TokenEmbed, Raw)[0]).ToArray();
        var batchVsAlone = Enumerable.Range(0, 3).Max(i => Reference.MaxAbsDiff(mixed[i].Outputs.Data, alone[i].Outputs.Data));
        TestContext.Out.WriteLine($"qwen3_vl mixed text/image batch vs one by one: max |diff| = {batchVsAlone:E2}");
        Assert.That(batchVsAlone, Is.LessThanOrEqualTo(1e-5f));
    }

    /// <summary>The stored pixel values through the backbone, with the vision tower's outputs and the 3-D positions checked.</summary>
    [TestCase("golden_image")]
    [TestCase("golden_image_batch")]
    public void StoredPixelValuesThroughTheBackbone(string name)
    {
        using var g = Read(name + ".safetensors");
        var (pixels, pShape) = Reference.ReadFloat32(g.File, "pixel_values");
        var (grid, _) = Reference.ReadInt64(g.File, "image_grid_thw");
        var (rope, _) = Reference.ReadInt64(g.File, "rope_position_ids");
        var grids = Enumerable.Range(0, grid.Length / 3).Select(i => ((int)grid[3 * i], (int)grid[3 * i + 1], (int)grid[3 * i + 2])).ToArray();
        using var model = PoolingModel.Load(Folder, new LlmOptions { Device = "cpu" });
        var backbone = (Qwen3VlModel)model.Backbone;
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = tensor(g.Ids, [g.B, g.T]);
        var mask = tensor(g.Mask, [g.B, g.T]);
        Assert.That(Qwen3VlModel.RopeIndex(ids, mask, grids, 502, 2).Where((_, i) => g.Mask[i % (g.B * g.T)] == 1),
            Is.EqualTo(rope.Where((_, i) => g.Mask[i % (g.B * g.T)] == 1)), "get_rope_index on valid positions");
        var hidden = backbone.Forward(new ModelInput(ids, mask, Pixels: new VisionInput(tensor(pixels, pShape), grids))).contiguous().data<float>().ToArray();
        var (max, n) = Reference.MaxAbsDiffValid(hidden, g.Hidden, g.Mask, g.T, Hidden);
        TestContext.Out.WriteLine($"qwen3_vl {name} from stored pixel_values: max |diff| = {max:E2} over {n} valid positions");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        using var debug = SafeTensorsFile.Open(Path.Combine(Folder, name + "_debug.safetensors"));
        var visual = (Qwen3VlVisionModel)backbone.named_children().First(c => c.name == "visual").module;
        var v = visual.forward(new VisionInput(tensor(pixels, pShape), grids));
        var embedDiff = Reference.MaxAbsDiff(v.ImageEmbeds.contiguous().data<float>().ToArray(), Reference.ReadFloat32(debug, "image_embeds").Data);
        var deepDiff = Enumerable.Range(0, v.DeepStack.Count)
            .Max(j => Reference.MaxAbsDiff(v.DeepStack[j].contiguous().data<float>().ToArray(), Reference.ReadFloat32(debug, $"deepstack_features.{j}").Data));
        TestContext.Out.WriteLine($"qwen3_vl {name} vision: image_embeds max |diff| = {embedDiff:E2}, DeepStack {deepDiff:E2}");
        Assert.That(embedDiff, Is.LessThanOrEqualTo(1e-4f));
        Assert.That(deepDiff, Is.LessThanOrEqualTo(1e-4f));
    }

    /// <summary>Qwen2VLImageProcessor against the torchvision backend: grids equal, pixel values within 2/255 / std.</summary>
    [TestCase("A")]
    [TestCase("B")]
    [TestCase("C")]
    public void TheImageProcessorMatchesTorchvision(string name)
    {
        var folder = TestPaths.Fixture("goldens", "qwen3_vl_preproc");
        var processor = Qwen2VlImageProcessor.Load(folder, 16, 2, 2);
        var image = ImageInput.FromFile(Path.Combine(folder, $"image_{name}.png"));
        var processed = processor.Process(image);
        using var golden = SafeTensorsFile.Open(Path.Combine(folder, "golden.safetensors"));
        var (grid, _) = Reference.ReadInt64(golden, $"torchvision.{name}.image_grid_thw");
        Assert.That(new long[] { processed.GridT, processed.GridH, processed.GridW }, Is.EqualTo(grid), "grid");
        var expected = Reference.ReadFloat32(golden, $"torchvision.{name}.pixel_values").Data;
        var max = Reference.MaxAbsDiff(processed.PixelValues, expected);
        var (pil, _) = Reference.ReadFloat32(golden, $"pil.{name}.pixel_values");
        TestContext.Out.WriteLine($"image_{name} ({image.Width}×{image.Height} → {processed.GridW * 16}×{processed.GridH * 16}): " +
                                  $"max |diff| vs torchvision = {max:E2}, vs PIL = {Reference.MaxAbsDiff(processed.PixelValues, pil):E2}");
        Assert.That(max, Is.LessThanOrEqualTo(2f / 255 / 0.5f + 1e-6f));
    }
}
