using TokenEmbed.Loading;
using TokenEmbed.Models.Decoder;
using TokenEmbed.Models.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Qwen3Vl;

// Port of transformers 5.17 models/qwen3_vl/modeling_qwen3_vl.py: Qwen3VLModel (image embeddings spliced at the image-pad
// positions with masked_scatter, get_rope_index for the 3-D positions), Qwen3VLTextModel (the Qwen3 decoder with
// interleaved M-RoPE and the DeepStack additions after the first layers). SPEC.md §8.4–8.5 is the verified spec.

/// <summary><c>Qwen3VLTextModel</c>: the shared decoder stack (Qwen3 layers) with M-RoPE and DeepStack injection.</summary>
internal sealed class Qwen3VlTextModel(Qwen3VlConfig config) : DecoderModel(config.Text, "language_model")
{
    /// <summary>M-RoPE from [3, B, T] positions (text-only batches pass none: <c>arange(T)</c> on every axis, i.e. 1-D RoPE).</summary>
    protected override (Tensor Cos, Tensor Sin) RotaryTables(ModelInput input, ScalarType dtype) =>
        input.PositionIds is { } p && p.dim() == 3
            ? Rope.InterleavedMultimodalTables(p, config.MropeSection, dtype)
            : base.RotaryTables(input, dtype);

    /// <summary><c>h[visual] += deepstack[l]</c> after layer l, for the first layers.</summary>
    protected override Tensor AfterLayer(int index, Tensor h, ModelInput input)
    {
        if (input.DeepStack is not { } deep || index >= deep.Features.Count) return h;
        var (b, t) = (h.shape[0], h.shape[1]);
        using var flat = h.view(b * t, -1);
        using var feature = deep.Features[index].to(h.dtype);
        flat.index_add_(0, deep.Positions, feature, Ops.One);
        return h;
    }

    /// <summary>The token-embedding lookup (<c>embed_tokens</c>).</summary>
    public Tensor Embed(Tensor ids) => EmbedTokensTable.forward(ids);
}

/// <summary>
/// <c>Qwen3VLModel</c> as a pooling backbone: <c>visual</c> (the vision tower) and <c>language_model</c> (the text decoder).
/// Text-only batches run exactly as Qwen3; batches with images splice the merged image embeddings at the image-pad tokens,
/// use 3-D positions and add the DeepStack features.
/// </summary>
internal sealed class Qwen3VlModel : nn.Module<ModelInput, Tensor>, IVisionBackbone
{
    private readonly Qwen3VlVisionModel visual;
    private readonly Qwen3VlTextModel language_model;

    public Qwen3VlModel(Qwen3VlConfig config) : base("Qwen3VLModel")
    {
        Config = config;
        visual = new Qwen3VlVisionModel(config.Vision);
        language_model = new Qwen3VlTextModel(config);
        RegisterComponents();
        eval();
    }

    /// <summary>The configuration (token ids, vision shape).</summary>
    public Qwen3VlConfig Config { get; }

    public int HiddenSize => Config.Text.HiddenSize;
    public int VocabSize => Config.Text.VocabSize;
    public int? MaxPositions => Config.Text.MaxPositions;
    public bool IsCausal => !Config.Text.Bidirectional;
    public int ImageTokenId => Config.ImageTokenId;
    public (int Start, int End) VisionDelimiterIds => (Config.VisionStartTokenId, Config.VisionEndTokenId);
    public (int Patch, int Temporal, int Merge) PatchGeometry => (Config.Vision.PatchSize, Config.Vision.TemporalPatchSize, Config.Vision.SpatialMergeSize);

    /// <summary>Weights a Qwen3-VL checkpoint may carry that the backbone does not use (old rotary buffers).</summary>
    public static bool IsIgnorable(string nameWithoutPrefix) => DecoderModel.IsIgnorable(nameWithoutPrefix);

    public Tensor Forward(ModelInput input) => forward(input);

    public override Tensor forward(ModelInput input)
    {
        if (input.Pixels is null) return language_model.forward(input);
        using var scope = NewDisposeScope();
        var ids = input.InputIds;
        var vision = visual.forward(input.Pixels);
        var visualMask = ids.eq(Ops.L(Config.ImageTokenId)).logical_and(input.AttentionMask.ne(Ops.L(0)));
        var positions = visualMask.flatten().nonzero().squeeze(1);
        if (positions.shape[0] != vision.ImageEmbeds.shape[0])
            throw new ArgumentException(
                $"The batch has {positions.shape[0]} image tokens but its images give {vision.ImageEmbeds.shape[0]} embeddings.");
        var embeds = language_model.Embed(ids);
        var (b, t) = (ids.shape[0], ids.shape[1]);
        embeds.view(b * t, -1).index_copy_(0, positions, vision.ImageEmbeds.to(embeds.dtype));
        var rope = RopeIndex(ids, input.AttentionMask, input.Pixels.Grids, Config.ImageTokenId, Config.Vision.SpatialMergeSize);
        var text = new ModelInput(ids, input.AttentionMask, PositionIds: tensor(rope, [3, b, t], device: ids.device), InputsEmbeds: embeds)
        {
            DeepStack = new DeepStackInput(positions, vision.DeepStack),
        };
        return language_model.forward(text).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// <c>get_rope_index</c> for images (SPEC.md §8.5): per row, over the valid tokens in order, a text token takes
    /// (cur, cur, cur) and advances by 1; a run of image tokens takes (cur + t, cur + r, cur + c) over the merged grid and
    /// advances by <c>max(h, w) / m</c>. Padded positions stay 0. Returns [3, B, T] row-major.
    /// </summary>
    internal static long[] RopeIndex(Tensor inputIds, Tensor attentionMask, IReadOnlyList<(int T, int H, int W)> grids, int imageTokenId, int m)
    {
        var (b, t) = ((int)inputIds.shape[0], (int)inputIds.shape[1]);
        using var idsCpu = inputIds.cpu();
        using var maskCpu = attentionMask.cpu();
        var ids = idsCpu.data<long>().ToArray();
        var mask = maskCpu.data<long>().ToArray();
        var pos = new long[3 * b * t];
        var next = 0;
        for (var r = 0; r < b; r++)
        {
            long cur = 0;
            var j = 0;
            while (j < t)
            {
                var at = r * t + j;
                if (mask[at] == 0) { j++; continue; }
                if (ids[at] != imageTokenId)
                {
                    for (var a = 0; a < 3; a++) pos[a * b * t + at] = cur;
                    cur++;
                    j++;
                    continue;
                }
                if (next >= grids.Count) throw new ArgumentException($"Row {r} has more image-token runs than the batch has images.");
                var (gt, gh, gw) = grids[next++];
                for (var ti = 0; ti < gt; ti++)
                for (var rr = 0; rr < gh / m; rr++)
                for (var cc = 0; cc < gw / m; cc++)
                {
                    while (j < t && mask[r * t + j] == 0) j++;
                    if (j >= t || ids[r * t + j] != imageTokenId)
                        throw new ArgumentException($"Row {r}: an image's token run is shorter than its grid ({gt}×{gh / m}×{gw / m}).");
                    var p = r * t + j;
                    (pos[p], pos[b * t + p], pos[2 * b * t + p]) = (cur + ti, cur + rr, cur + cc);
                    j++;
                }
                cur += Math.Max(gh, gw) / m;
            }
        }
        if (next != grids.Count) throw new ArgumentException($"The batch has {grids.Count} images but {next} image-token runs.");
        return pos;
    }
}
