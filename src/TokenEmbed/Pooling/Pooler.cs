using System.Runtime.InteropServices;
using TokenEmbed.Kernels;
using TokenEmbed.Loading;
using TokenEmbed.Models.Heads;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Pooling;

/// <summary>
/// Which of a prompt's token vectors TokenEmbed returns: a keep-flag per token id, or null to keep them all.
/// Model-specific rules (BGE-M3 drops its <c>&lt;s&gt;</c> vector) belong to the model's architecture class.
/// </summary>
internal delegate bool[]? TokenFilter(IReadOnlyList<int> ids);

/// <summary>How Embed turns a prompt's hidden states into one vector.</summary>
/// <param name="Mode">The sequence pooling (sentence-transformers' Pooling module, or the architecture's default).</param>
/// <param name="Projection">A projection applied to the hidden states, or null.</param>
/// <param name="ProjectPooled">
/// True: pool, then project the pooled vector (a Pooling module before Dense modules); false: project every token, then
/// pool (ColBERT heads, Dense before Pooling).
/// </param>
internal sealed record EmbedPlan(PoolingMode Mode, ProjectionHead? Projection = null, bool ProjectPooled = false);

/// <summary>
/// A model's pooling over float32 last hidden states: for TokenEmbed, the token projection then the token filter; for
/// Embed, the <see cref="EmbedPlan"/>; then, per request, the Matryoshka cut and L2 normalization (vLLM's pooler with
/// per-request <c>PoolingParams</c>). One forward batch may mix requests of different tasks, dimensions and normalization.
/// </summary>
internal sealed class Pooler : IDisposable
{
    private readonly ProjectionHead? _tokenProjection;
    private readonly EmbedPlan _embed;
    private readonly TokenFilter? _tokenFilter;

    /// <param name="hiddenSize">The backbone's hidden size (the width when there is no projection).</param>
    /// <param name="tokenProjection">The projection of every token for TokenEmbed, or null.</param>
    /// <param name="embed">How Embed pools.</param>
    /// <param name="isLateInteraction">Whether Score is MaxSim over TokenEmbed vectors (else cosine of Embed vectors).</param>
    /// <param name="tokenFilter">The model's token filter for TokenEmbed, or null.</param>
    public Pooler(int hiddenSize, ProjectionHead? tokenProjection, EmbedPlan embed, bool isLateInteraction, TokenFilter? tokenFilter = null)
    {
        HiddenSize = hiddenSize;
        _tokenProjection = tokenProjection;
        _embed = embed;
        IsLateInteraction = isLateInteraction;
        _tokenFilter = tokenFilter;
    }

    /// <summary>The backbone's hidden size.</summary>
    public int HiddenSize { get; }

    /// <summary>Whether Score is MaxSim over TokenEmbed vectors rather than cosine similarity of Embed vectors.</summary>
    public bool IsLateInteraction { get; }

    /// <summary>The projections this pooler owns (to move and dispose them).</summary>
    private IEnumerable<ProjectionHead> Heads => new[] { _tokenProjection, _embed.Projection }.OfType<ProjectionHead>().Distinct();

    /// <summary>The vector size <paramref name="task"/> produces before any Matryoshka cut.</summary>
    public int Dimension(PoolingTask task) =>
        (task == PoolingTask.TokenEmbed ? _tokenProjection : _embed.Projection)?.OutFeatures ?? HiddenSize;

    /// <summary>Moves the projections to <paramref name="device"/> (they stay float32).</summary>
    public void To(Device device)
    {
        foreach (var h in Heads) h.To(device);
    }

    /// <summary>
    /// Pools row <c>r</c> of <paramref name="hidden"/> [B, T, H] (float32, right-padded; <paramref name="mask"/> [B, T])
    /// for <paramref name="requests"/>[r], whose prompt is <paramref name="ids"/>[r].
    /// </summary>
    /// <param name="hidden">Float32 states [B, T, H].</param>
    /// <param name="mask">The attention mask [B, T].</param>
    /// <param name="ids">Each row's token ids.</param>
    /// <param name="requests">Each row's pooling request.</param>
    /// <param name="keeps">Per prompt, which token vectors TokenEmbed returns besides the model's own filter (a PyLate
    /// document's skiplist), or null for all.</param>
    public PoolingOutput[] Pool(Tensor hidden, Tensor mask, IReadOnlyList<int[]> ids, IReadOnlyList<PoolingRequest> requests, IReadOnlyList<bool[]?>? keeps = null)
    {
        using var scope = NewDisposeScope();
        var b = requests.Count;
        var outputs = new PoolingOutput[b];
        var tokenRows = Enumerable.Range(0, b).Where(r => requests[r].Task == PoolingTask.TokenEmbed).ToArray();
        var embedRows = Enumerable.Range(0, b).Where(r => requests[r].Task == PoolingTask.Embed).ToArray();

        if (tokenRows.Length > 0)
        {
            var tokens = Rows(hidden, tokenRows, b);
            if (_tokenProjection != null) tokens = _tokenProjection.Forward(tokens);
            Finish(tokens, tokenRows, requests, (row, data, width) =>
            {
                var len = ids[row].Length;
                var keep = Both(_tokenFilter?.Invoke(ids[row]), keeps?[row]);
                outputs[row] = keep == null ? new PoolingOutput(data[..(len * width)].ToArray(), [len, width]) : Kept(data, keep, width);
            });
            // Token pooling (PyLate's, documents only): a few milliseconds of host work per document, run in parallel.
            var pooled = tokenRows.Where(r => requests[r].PoolFactor > 1).ToArray();
            Parallel.ForEach(pooled, r => outputs[r] = HierarchicalPooling.Pool(outputs[r], requests[r].PoolFactor, requests[r].ProtectedTokens,
                requests[r].SentenceTransformersPooling));
        }
        if (embedRows.Length > 0)
        {
            var states = Rows(hidden, embedRows, b);
            var m = Rows(mask, embedRows, b);
            var pooled = _embed switch
            {
                { Projection: null } => Poolers.Pool(states, m, _embed.Mode),
                { ProjectPooled: true } => _embed.Projection.Forward(Poolers.Pool(states, m, _embed.Mode)),
                _ => Poolers.Pool(_embed.Projection.Forward(states), m, _embed.Mode),
            };
            Finish(pooled, embedRows, requests, (row, data, width) => outputs[row] = new PoolingOutput(data.ToArray(), [width]));
        }
        return outputs;
    }

    /// <summary>The rows <paramref name="rows"/> of <paramref name="x"/> (all of it when they are every row in order).</summary>
    private static Tensor Rows(Tensor x, int[] rows, int batch) =>
        rows.Length == batch ? x.alias() : x.index_select(0, tensor(rows.Select(r => (long)r).ToArray(), device: x.device));

    /// <summary>Receives one request row's finished host values (row-major, last axis <c>width</c>).</summary>
    private delegate void Emit(int row, ReadOnlySpan<float> data, int width);

    /// <summary>
    /// Cuts and normalizes each row of <paramref name="x"/> (row i belongs to request <paramref name="rows"/>[i]) with its own
    /// request's settings, grouped so that rows with equal settings are finished together, and hands each row's host values
    /// to <paramref name="emit"/>.
    /// </summary>
    private static void Finish(Tensor x, int[] rows, IReadOnlyList<PoolingRequest> requests, Emit emit)
    {
        foreach (var group in Enumerable.Range(0, rows.Length).GroupBy(i => (requests[rows[i]].Dimensions, requests[rows[i]].Normalize)))
        {
            var members = group.ToArray();
            using var part = Rows(x, members, rows.Length);
            if (part.device_type == DeviceType.CPU && part.dtype == ScalarType.Float32 && TensorMemory.IsAvailable)
            {
                using var contiguous = part.contiguous();
                FinishOnHost(contiguous, members, rows, group.Key.Dimensions, group.Key.Normalize, emit);
                continue;
            }
            using var done = Poolers.CutAndNormalize(part, group.Key.Dimensions, group.Key.Normalize);
            using var host = done.cpu().contiguous();
            var all = MemoryMarshal.Cast<byte, float>(host.bytes);
            var width = (int)host.shape[^1];
            var rowSize = all.Length / members.Length;
            for (var i = 0; i < members.Length; i++) emit(rows[members[i]], all.Slice(i * rowSize, rowSize), width);
        }
    }

    /// <summary>
    /// <see cref="Finish"/> for CPU float32 states, in one pass from the tensor's memory: each vector cut, divided by
    /// max(‖x‖₂, 1e-12) as <c>torch.nn.functional.normalize</c> does, into a buffer handed to <paramref name="emit"/>, the
    /// batch's rows in parallel on the kernels' threads (three libtorch ops, a host copy and their 6 MB temporaries for
    /// 32 × 128 MiniLM tokens before).
    /// </summary>
    private static unsafe void FinishOnHost(Tensor x, int[] members, int[] rows, int? dimensions, bool normalize, Emit emit)
    {
        var full = (int)x.shape[^1];
        var width = dimensions is { } d && d < full ? d : full;
        var vectors = (int)(x.numel() / full / members.Length);   // per row: its tokens (TokenEmbed) or one (Embed)
        var source = TensorMemory.Float32(x);
        void Row(int i)
        {
            var buffer = System.Buffers.ArrayPool<float>.Shared.Rent(vectors * width);
            try
            {
                for (var v = 0; v < vectors; v++)
                {
                    var from = new ReadOnlySpan<float>(source + ((long)i * vectors + v) * full, width);
                    var to = buffer.AsSpan(v * width, width);
                    if (normalize) Normalize(from, to);
                    else from.CopyTo(to);
                }
                emit(rows[members[i]], buffer.AsSpan(0, vectors * width), width);
            }
            finally
            {
                System.Buffers.ArrayPool<float>.Shared.Return(buffer);
            }
        }
        if (members.Length == 1 || (long)members.Length * vectors * width < 1 << 16)
            for (var i = 0; i < members.Length; i++) Row(i);
        else Kernels.KernelThreads.For(members.Length, shares: false, (from, to) => { for (var i = from; i < to; i++) Row((int)i); });
        GC.KeepAlive(x);
    }

    /// <summary><c>to = from / max(‖from‖₂, 1e-12)</c>.</summary>
    private static void Normalize(ReadOnlySpan<float> from, Span<float> to)
    {
        var squares = System.Numerics.Vector<float>.Zero;
        var lanes = System.Numerics.Vector<float>.Count;
        var c = 0;
        for (; c + lanes <= from.Length; c += lanes)
        {
            var x = new System.Numerics.Vector<float>(from[c..]);
            squares += x * x;
        }
        var sum = (double)System.Numerics.Vector.Sum(squares);
        for (; c < from.Length; c++) sum += (double)from[c] * from[c];
        var denominator = (float)Math.Max(Math.Sqrt(sum), 1e-12);
        var vd = new System.Numerics.Vector<float>(denominator);
        for (c = 0; c + lanes <= from.Length; c += lanes) (new System.Numerics.Vector<float>(from[c..]) / vd).CopyTo(to[c..]);
        for (; c < from.Length; c++) to[c] = from[c] / denominator;
    }

    private static bool[]? Both(bool[]? a, bool[]? b) =>
        a is null ? b : b is null ? a : a.Zip(b, (x, y) => x && y).ToArray();

    private static PoolingOutput Kept(ReadOnlySpan<float> data, bool[] keep, int width)
    {
        var n = keep.Count(k => k);
        var result = new float[n * width];
        var o = 0;
        for (var j = 0; j < keep.Length; j++)
        {
            if (!keep[j]) continue;
            data.Slice(j * width, width).CopyTo(result.AsSpan(o * width));
            o++;
        }
        return new PoolingOutput(result, [n, width]);
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var h in Heads) h.Dispose();
    }
}
