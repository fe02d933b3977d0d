using TokenEmbed.Models.Layers;
using TokenEmbed.Models;
using TokenEmbed.Pooling;
using static TorchSharp.torch;

namespace TokenEmbed.Engine;

/// <summary>
/// Tokenized prompts → length-sorted batches bounded by a token budget → forward → the model's pooler, each request with its
/// own <see cref="PoolingRequest"/> → outputs in input order. Every batch runs inside its own dispose scope, so memory does
/// not grow with use. The engine knows no model: heads, token filters and pooling defaults belong to the architecture.
/// </summary>
internal sealed class EncodeEngine
{
    private readonly PoolingModel _model;
    private readonly int _maxBatchTokens;

    /// <summary>The default token budget of a CPU forward (<see cref="LlmOptions.MaxBatchTokens"/>).</summary>
    public const int CpuBatchTokens = 2048;

    /// <summary>The default token budget of a CUDA forward.</summary>
    public const int CudaBatchTokens = 16384;
    private readonly int _maxBatchSize;

    public EncodeEngine(PoolingModel model, LlmOptions options)
    {
        if (options.MaxBatchTokens <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxBatchTokens, "LlmOptions.MaxBatchTokens must be positive.");
        if (options.MaxBatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxBatchSize, "LlmOptions.MaxBatchSize must be positive.");
        _model = model;
        _maxBatchTokens = options.MaxBatchTokens ?? (model.Device.type == TorchSharp.DeviceType.CPU ? CpuBatchTokens : CudaBatchTokens);
        _maxBatchSize = options.MaxBatchSize;
    }

    /// <summary>
    /// The batches for prompts of these lengths: indices sorted longest-first, each batch within the token budget (count ×
    /// its longest prompt) and the batch-size limit.
    /// </summary>
    public List<int[]> Plan(int[] lengths)
    {
        var order = Enumerable.Range(0, lengths.Length).OrderByDescending(i => lengths[i]).ToArray();
        var batches = new List<int[]>();
        var start = 0;
        while (start < order.Length)
        {
            var longest = lengths[order[start]];
            var count = 1;
            while (start + count < order.Length && count < _maxBatchSize && (count + 1L) * longest <= _maxBatchTokens) count++;
            batches.Add(order.AsSpan(start, count).ToArray());
            start += count;
        }
        return batches;
    }

    /// <summary>Runs one batch: prompt i pooled with <paramref name="requests"/>[i] (outputs not yet checked for finiteness).</summary>
    public PoolingOutput[] RunBatch(TokenizedPrompt[] prompts, PoolingRequest[] requests) =>
        RunBatch(prompts, requests, prompts.Max(p => p.Ids.Length));

    /// <summary>The batch's images in row order (and within a row, prompt order), as the vision tower takes them; null without images.</summary>
    private static Models.Qwen3Vl.VisionInput? Pixels(TokenizedPrompt[] prompts, Device device)
    {
        var images = prompts.SelectMany(p => p.Images).ToArray();
        if (images.Length == 0) return null;
        var rowLength = images[0].PixelValues.Length / (images[0].GridT * images[0].GridH * images[0].GridW);
        var all = new float[images.Sum(i => (long)i.PixelValues.Length)];
        long offset = 0;
        foreach (var image in images)
        {
            image.PixelValues.CopyTo(all, offset);
            offset += image.PixelValues.Length;
        }
        var pixels = tensor(all, [all.Length / rowLength, rowLength]).to(device);
        return new Models.Qwen3Vl.VisionInput(pixels, images.Select(i => (i.GridT, i.GridH, i.GridW)).ToArray());
    }

    /// <summary>
    /// A NaN or infinity in an output is an error naming the prompt, never a silently wrong vector (a checkpoint with
    /// NaN weights, a config with a negative norm eps, or a half-precision overflow). The scan costs far below 1% of a forward.
    /// </summary>
    public static PoolingOutput CheckFinite(PoolingOutput output, int prompt)
    {
        var data = output.Data;
        // x − x is 0 for every finite x and NaN for ±∞ and NaN: one vector compare per Vector<float>.Count values.
        var lanes = System.Numerics.Vector<float>.Count;
        var clean = true;
        var v = 0;
        for (; v + lanes <= data.Length && clean; v += lanes)
        {
            var x = new System.Numerics.Vector<float>(data, v);
            clean = System.Numerics.Vector.EqualsAll(x - x, System.Numerics.Vector<float>.Zero);
        }
        if (clean && v == data.Length) return output;
        for (var i = 0; i < data.Length; i++)
        {
            if (float.IsFinite(data[i])) continue;
            throw new InvalidOperationException(
                $"Prompt {prompt}: the model produced a non-finite value ({data[i]}) in its output. The weights or config.json " +
                "may hold NaN / infinite values or an invalid setting (e.g. a negative layer_norm_eps), or half precision overflowed.");
        }
        return output;
    }

    private PoolingOutput[] RunBatch(TokenizedPrompt[] prompts, PoolingRequest[] requests, int t)
    {
        var ids = prompts.Select(p => p.Ids).ToArray();
        var b = ids.Length;
        var idData = new long[b * t];
        var maskData = new long[b * t];
        // Padded positions are masked; their id only has to be a valid row of the embedding table.
        var pad = _model.Backbone.PaddingId is { } bp && (uint)bp < (uint)_model.VocabSize ? bp
            : _model.Tokenizer?.PadTokenId is { } p && (uint)p < (uint)_model.VocabSize ? p : 0;
        for (var r = 0; r < b; r++)
        {
            var seq = ids[r];
            var attend = prompts[r].Attend;
            for (var j = 0; j < t; j++)
            {
                idData[r * t + j] = j < seq.Length ? seq[j] : pad;
                maskData[r * t + j] = j < seq.Length && (attend is null || attend[j]) ? 1 : 0;
            }
        }

        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        using var gemm = Gemm.Use(_model.Matmul);
        var onKernels = _model.Matmul.LinearKernels && _model.Backbone.RunsOnKernels;
        using var threads = CpuForwardThreads.Enter(_model.Device, (long)b * t, onKernels);
        var device = _model.Device;
        var inputIds = tensor(idData, [b, t]).to(device);
        var mask = tensor(maskData, [b, t]).to(device);
        var fullyAttended = Array.IndexOf(maskData, 0L) < 0;
        var hidden = _model.Backbone.Forward(new ModelInput(inputIds, mask, Pixels: Pixels(prompts, device)) { FullyAttended = fullyAttended }).to(ScalarType.Float32);
        var pooled = _model.Pooler.Pool(hidden, mask, ids, requests, prompts.Select(p => p.Keep).ToArray());
        if (device.type == TorchSharp.DeviceType.CPU && !onKernels && (long)b * t > CpuForwardThreads.MaxTokens) CpuForwardThreads.WideForwardEnded();
        return pooled;
    }
}

/// <summary>
/// A CPU forward of a few tokens runs on one intra-op thread: its ops are too small to split, and the OpenMP fork/join of
/// ~200 ops costs more than it saves (a 16-token MiniLM query: 8.8 ms on two threads, 6.1 ms on one). So does any forward
/// that runs on TokenEmbed's kernels (<see cref="Models.IBackbone.RunsOnKernels"/>), whose kernels share the thread budget
/// on <see cref="Kernels.SpinPool"/> instead. libtorch's thread count is process-wide, so it is restored after the forward;
/// a concurrent forward of another model meanwhile also runs on one thread (slower, never wrong).
/// </summary>
internal static class CpuForwardThreads
{
    /// <summary>Batches of at most this many tokens (padding included) run on one thread.</summary>
    public const long MaxTokens = 32;

    private static readonly object Gate = new();
    private static int _users;
    private static int _saved;

    /// <summary>
    /// Drops to one libtorch thread for a small CPU batch, or for any CPU batch when <paramref name="onKernels"/> is set,
    /// until disposed; the kernels meanwhile share the thread budget on <see cref="Kernels.SpinPool"/>.
    /// </summary>
    public static Scope Enter(Device device, long tokens, bool onKernels = false)
    {
        if (device.type != TorchSharp.DeviceType.CPU) return default;
        if (tokens > MaxTokens && !onKernels)
        {
            Kernels.SpinPool.StopLingering();   // a forward on OpenMP's threads: no helper spinning next to them
            return default;
        }
        int budget;
        lock (Gate)
        {
            if (_users++ == 0)
            {
                _saved = get_num_threads();
                if (_saved > 1) set_num_threads(1);
            }
            budget = _saved;
        }
        // With libtorch on one thread, TokenEmbed's kernels may use the cores the thread count allowed: a forward on the kernels
        // all of them; a small batch of another model two, and not right after a multi-threaded forward, whose OpenMP threads
        // still spin for a while (a helper sharing a core with them made a 3 ms query take 10 ms or more).
        var quiet = System.Diagnostics.Stopwatch.GetElapsedTime(Volatile.Read(ref _lastWideForward)) > QuietAfterWideForward;
        var team = Math.Min(Environment.ProcessorCount, onKernels ? budget : quiet ? Math.Min(budget, 2) : 1);
        return new Scope(true, team > 1 ? Kernels.SpinPool.Enter(team) : default);
    }

    /// <summary>How long after a multi-threaded CPU forward a small batch keeps to one core.</summary>
    private static readonly TimeSpan QuietAfterWideForward = TimeSpan.FromMilliseconds(50);

    private static long _lastWideForward;

    /// <summary>Notes that a CPU forward on libtorch's threads (a batch larger than <see cref="MaxTokens"/>) just ended.</summary>
    public static void WideForwardEnded() => Volatile.Write(ref _lastWideForward, System.Diagnostics.Stopwatch.GetTimestamp());

    /// <summary>Restores the thread count when the last small forward ends.</summary>
    public readonly struct Scope(bool active, Kernels.SpinPool.Scope kernels) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose()
        {
            if (!active) return;
            kernels.Dispose();
            lock (Gate)
            {
                if (--_users == 0 && _saved > 1) set_num_threads(_saved);
            }
        }
    }
}
