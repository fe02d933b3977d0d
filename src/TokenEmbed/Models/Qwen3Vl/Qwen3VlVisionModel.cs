using TokenEmbed.Models.Layers;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Qwen3Vl;

// Port of transformers 5.17 models/qwen3_vl/modeling_qwen3_vl.py, the vision side (Qwen3VLVisionModel,
// Qwen3VLVisionPatchEmbed, Qwen3VLVisionBlock, Qwen3VLVisionAttention, Qwen3VLVisionMLP, Qwen3VLVisionPatchMerger,
// Qwen3VLVisionRotaryEmbedding) and vision_utils.py's interpolation indices; SPEC.md §8.3 is the verified spec.
// State-dict names: visual.patch_embed.proj, pos_embed, blocks.N.{norm1, attn.qkv, attn.proj, norm2, mlp.linear_fc1/2},
// merger.{norm, linear_fc1, linear_fc2}, deepstack_merger_list.J.*.

/// <summary>The pixels of a batch's images: patch rows [Σ patches, C·tp·p·p] in processor order and each image's grid (t, h, w).</summary>
/// <param name="PixelValues">float32 [Σ patches, C·tp·p·p] on the model's device.</param>
/// <param name="Grids">Per image (in prompt order, row by row): temporal, height and width in patches.</param>
internal sealed record VisionInput(Tensor PixelValues, IReadOnlyList<(int T, int H, int W)> Grids);

/// <summary><c>Qwen3VLVisionPatchEmbed.proj</c>: a Conv3d with kernel = stride = (tp, p, p), computed as the matmul it equals.</summary>
internal sealed class Qwen3VlPatchProj : nn.Module<Tensor, Tensor>, IBindable
{
    private Parameter weight;
    private Parameter bias;

    public Qwen3VlPatchProj(Qwen3VlVisionSpec s) : base("proj")
    {
        weight = Nn.Empty([s.HiddenSize, s.InChannels, s.TemporalPatchSize, s.PatchSize, s.PatchSize]);
        bias = Nn.Empty([s.HiddenSize]);
        RegisterComponents();
    }

    public void Bind(string name, Parameter value)
    {
        switch (name)
        {
            case nameof(weight): weight.Dispose(); weight = value; break;
            case nameof(bias): bias.Dispose(); bias = value; break;
            default: throw new ArgumentException($"The patch projection has no parameter '{name}'.", nameof(name));
        }
        ConditionallyRegisterParameter(name, value);
    }

    /// <summary>[N, C·tp·p·p] → [N, hidden]; the row layout (c, t, y, x) is the Conv3d weight's.</summary>
    public override Tensor forward(Tensor pixels)
    {
        using var w = weight.view(weight.shape[0], -1);
        return nn.functional.linear(pixels, w, bias);
    }
}

/// <summary><c>Qwen3VLVisionPatchEmbed</c>.</summary>
internal sealed class Qwen3VlPatchEmbed : nn.Module<Tensor, Tensor>
{
    private readonly Qwen3VlPatchProj proj;

    public Qwen3VlPatchEmbed(Qwen3VlVisionSpec s) : base("patch_embed")
    {
        proj = new Qwen3VlPatchProj(s);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels) => proj.forward(pixels);
}

/// <summary><c>Qwen3VLVisionAttention</c>: fused qkv, 2-D rotary in float32, full attention within each image frame.</summary>
internal sealed class Qwen3VlVisionAttention : nn.Module<Tensor, Tensor, Tensor, IReadOnlyList<int>, Tensor>
{
    private readonly Dense qkv;
    private readonly Dense proj;
    private readonly int _heads, _headDim;

    public Qwen3VlVisionAttention(Qwen3VlVisionSpec s) : base("attn")
    {
        (_heads, _headDim) = (s.NumHeads, s.HeadDim);
        qkv = Nn.Linear(s.HiddenSize, 3L * s.HiddenSize);
        proj = Nn.Linear(s.HiddenSize, s.HiddenSize);
        RegisterComponents();
    }

    /// <summary><paramref name="x"/> [N, hidden]; tables [1, N, hd]; <paramref name="segments"/>: patch counts of the frames, in order.</summary>
    public override Tensor forward(Tensor x, Tensor cos, Tensor sin, IReadOnlyList<int> segments)
    {
        using var scope = NewDisposeScope();
        var n = x.shape[0];
        var parts = qkv.forward(x).view(n, 3, _heads, _headDim).permute(1, 2, 0, 3);    // [3, heads, N, hd]
        var q = Rotary.ApplyInFloat32(parts[0].unsqueeze(0), cos, sin);                  // [1, heads, N, hd]
        var k = Rotary.ApplyInFloat32(parts[1].unsqueeze(0), cos, sin);
        var v = parts[2].unsqueeze(0);
        var outs = new List<Tensor>(segments.Count);
        long start = 0;
        foreach (var len in segments)
        {
            outs.Add(Attention.ScaledDotProduct(q.narrow(2, start, len), k.narrow(2, start, len), v.narrow(2, start, len), null));
            start += len;
        }
        var ctx = (outs.Count == 1 ? outs[0] : cat(outs, 2)).squeeze(0).transpose(0, 1).reshape(n, -1);   // [N, heads·hd]
        return proj.forward(ctx).MoveToOuterDisposeScope();
    }
}

/// <summary><c>Qwen3VLVisionBlock</c>: pre-norm attention and MLP (LayerNorm eps 1e-6).</summary>
internal sealed class Qwen3VlVisionBlock : nn.Module<Tensor, Tensor, Tensor, IReadOnlyList<int>, Tensor>
{
    private readonly LayerNorm norm1;
    private readonly LayerNorm norm2;
    private readonly Qwen3VlVisionAttention attn;
    private readonly FeedForward mlp;   // Qwen3VLVisionMLP: linear_fc2(act(linear_fc1(x)))

    public Qwen3VlVisionBlock(Qwen3VlVisionSpec s) : base("block")
    {
        norm1 = Nn.LayerNorm(s.HiddenSize, 1e-6);
        norm2 = Nn.LayerNorm(s.HiddenSize, 1e-6);
        attn = new Qwen3VlVisionAttention(s);
        mlp = new FeedForward("linear_fc1", "linear_fc2", s.HiddenSize, s.IntermediateSize, s.HiddenAct);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x, Tensor cos, Tensor sin, IReadOnlyList<int> segments)
    {
        using var scope = NewDisposeScope();
        var h = Ops.Add(x, attn.forward(norm1.forward(x), cos, sin, segments));
        return Ops.AddInPlace(h, mlp.forward(norm2.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// <c>Qwen3VLVisionPatchMerger</c>: each 2×2 block of patches (m² consecutive rows) → one text-width vector;
/// <c>use_postshuffle_norm</c> normalizes after grouping (DeepStack mergers) instead of per patch (the main merger).
/// </summary>
internal sealed class Qwen3VlPatchMerger : nn.Module<Tensor, Tensor>
{
    private readonly LayerNorm norm;
    private readonly Dense linear_fc1;
    private readonly Dense linear_fc2;
    private readonly bool _postShuffleNorm;
    private readonly long _grouped;

    public Qwen3VlPatchMerger(Qwen3VlVisionSpec s, bool postShuffleNorm) : base("merger")
    {
        _postShuffleNorm = postShuffleNorm;
        _grouped = (long)s.HiddenSize * s.SpatialMergeSize * s.SpatialMergeSize;
        norm = Nn.LayerNorm(postShuffleNorm ? _grouped : s.HiddenSize, 1e-6);
        linear_fc1 = Nn.Linear(_grouped, _grouped);
        linear_fc2 = Nn.Linear(_grouped, s.OutHiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var z = _postShuffleNorm ? norm.forward(x.reshape(-1, _grouped)) : norm.forward(x).reshape(-1, _grouped);
        var y = linear_fc2.forward(nn.functional.gelu(linear_fc1.forward(z)));   // nn.GELU(): exact erf
        return y.MoveToOuterDisposeScope();
    }
}

/// <summary>The vision tower's outputs: merged image embeddings [Σ patches / m², text hidden] and the DeepStack features.</summary>
internal sealed record VisionOutput(Tensor ImageEmbeds, IReadOnlyList<Tensor> DeepStack);

/// <summary><c>Qwen3VLVisionModel</c> (registered as <c>visual</c>).</summary>
internal sealed class Qwen3VlVisionModel : nn.Module<VisionInput, VisionOutput>
{
    private readonly Qwen3VlPatchEmbed patch_embed;
    private readonly EmbeddingTable pos_embed;
    private readonly ModuleList<Qwen3VlVisionBlock> blocks;
    private readonly Qwen3VlPatchMerger merger;
    private readonly ModuleList<Qwen3VlPatchMerger> deepstack_merger_list;
    private readonly Qwen3VlVisionSpec _spec;
    private readonly float[] _invFreq;

    public Qwen3VlVisionModel(Qwen3VlVisionSpec s) : base("visual")
    {
        _spec = s;
        patch_embed = new Qwen3VlPatchEmbed(s);
        pos_embed = Nn.Embedding(s.NumPositionEmbeddings, s.HiddenSize);
        blocks = nn.ModuleList(Enumerable.Range(0, s.Depth).Select(_ => new Qwen3VlVisionBlock(s)).ToArray());
        merger = new Qwen3VlPatchMerger(s, postShuffleNorm: false);
        deepstack_merger_list = nn.ModuleList(s.DeepStackIndexes.Select(_ => new Qwen3VlPatchMerger(s, postShuffleNorm: true)).ToArray());
        _invFreq = Rotary.DefaultInverseFrequencies(s.HeadDim / 2, s.RopeTheta);   // hd/4 frequencies per axis
        RegisterComponents();
    }

    public override VisionOutput forward(VisionInput input)
    {
        using var scope = NewDisposeScope();
        var device = input.PixelValues.device;
        var coords = PatchCoordinates(input.Grids, _spec.SpatialMergeSize);
        var dtype = pos_embed.Weight.dtype;
        var x = Ops.AddInPlace(patch_embed.forward(input.PixelValues.to(dtype)), InterpolatedPositions(coords, device));

        // 2-D axial rotary: e = cat(row·inv, col·inv), emb = cat(e, e), in float32.
        var rows = tensor(coords.Rows, device: device).unsqueeze(1);
        var cols = tensor(coords.Cols, device: device).unsqueeze(1);
        var inv = tensor(_invFreq, device: device).unsqueeze(0);
        var e = cat([rows * inv, cols * inv], 1);
        var emb = cat([e, e], 1).unsqueeze(0);                                   // [1, N, hd]
        var (cos, sin) = (emb.cos(), emb.sin());

        var deep = new List<Tensor>();
        for (var i = 0; i < blocks.Count; i++)
        {
            var next = blocks[i].forward(x, cos, sin, coords.Segments);
            x.Dispose();
            x = next;
            var j = IndexOf(_spec.DeepStackIndexes, i);
            if (j >= 0) deep.Add(deepstack_merger_list[j].forward(x).MoveToOuterDisposeScope());
        }
        return new VisionOutput(merger.forward(x).MoveToOuterDisposeScope(), deep);
    }

    private static int IndexOf(IReadOnlyList<int> list, int value)
    {
        for (var i = 0; i < list.Count; i++) if (list[i] == value) return i;
        return -1;
    }

    /// <summary>Every patch's (row, col) in merge-block order, its image's grid size, and the patch count of each frame.</summary>
    internal sealed record Coordinates(float[] Rows, float[] Cols, int[] GridH, int[] GridW, int[] RowIdx, int[] ColIdx, IReadOnlyList<int> Segments);

    internal static Coordinates PatchCoordinates(IReadOnlyList<(int T, int H, int W)> grids, int m)
    {
        var total = grids.Sum(g => g.T * g.H * g.W);
        var (rows, cols) = (new float[total], new float[total]);
        var (gh, gw, ri, ci) = (new int[total], new int[total], new int[total], new int[total]);
        var segments = new List<int>();
        var n = 0;
        foreach (var (t, h, w) in grids)
            for (var f = 0; f < t; f++)
            {
                segments.Add(h * w);
                for (var br = 0; br < h / m; br++)
                for (var bc = 0; bc < w / m; bc++)
                for (var ir = 0; ir < m; ir++)
                for (var ic = 0; ic < m; ic++)
                {
                    ri[n] = br * m + ir;
                    ci[n] = bc * m + ic;
                    rows[n] = ri[n];
                    cols[n] = ci[n];
                    gh[n] = h;
                    gw[n] = w;
                    n++;
                }
            }
        return new Coordinates(rows, cols, gh, gw, ri, ci, segments);
    }

    /// <summary>
    /// The learned position table resampled bilinearly to each image's grid (align_corners, border clamp), summing the
    /// four taps in transformers' order: (r0,c0), (r0,c1), (r1,c0), (r1,c1).
    /// </summary>
    private Tensor InterpolatedPositions(Coordinates c, Device device)
    {
        var side = _spec.PositionSide;
        var n = c.Rows.Length;
        var idx = new long[4][];
        var wts = new float[4][];
        for (var k = 0; k < 4; k++) (idx[k], wts[k]) = (new long[n], new float[n]);
        for (var i = 0; i < n; i++)
        {
            var (r0, r1, fr) = Tap(c.RowIdx[i], c.GridH[i], side);
            var (c0, c1, fc) = Tap(c.ColIdx[i], c.GridW[i], side);
            (idx[0][i], wts[0][i]) = (r0 * side + c0, (1 - fr) * (1 - fc));
            (idx[1][i], wts[1][i]) = (r0 * side + c1, (1 - fr) * fc);
            (idx[2][i], wts[2][i]) = (r1 * side + c0, fr * (1 - fc));
            (idx[3][i], wts[3][i]) = (r1 * side + c1, fr * fc);
        }
        Tensor? sum = null;
        for (var k = 0; k < 4; k++)
        {
            using var rowsK = pos_embed.forward(tensor(idx[k], device: device));
            using var wK = tensor(wts[k], device: device).unsqueeze(1).to(rowsK.dtype);
            var term = rowsK * wK;
            if (sum is null) sum = term;
            else { Ops.AddInPlace(sum, term); term.Dispose(); }
        }
        return sum!;
    }

    /// <summary>One axis: <c>src = idx·(side−1)/max(size−1, 1)</c> in float32, its floor, the next index (clamped) and the fraction.</summary>
    private static (int I0, int I1, float Frac) Tap(int index, int size, int side)
    {
        var src = index * (float)(side - 1) / Math.Max(size - 1, 1);
        var f0 = MathF.Floor(src);
        var i0 = Math.Clamp((int)f0, 0, side - 1);
        var i1 = Math.Clamp((int)f0 + 1, 0, side - 1);
        return (i0, i1, src - f0);
    }
}
