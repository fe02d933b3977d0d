using BenchmarkDotNet.Attributes;
using TokenEmbed.Runtime;
using static TorchSharp.torch;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// The 24 linear products of an all-MiniLM-L6-v2 forward (per layer: fused QKV 384→1152, output 384→384, FFN 384→1536 and
/// 1536→384) on oneDNN, with the weights laid out as checkpoints store them ([out, in], the product reads Wᵀ: the
/// baseline) against the layout TokenEmbed keeps after loading ([in, out] contiguous, <c>Dense.StoreTransposed</c>).
/// </summary>
public class GemmLayoutBenchmarks
{
    private Tensor[] _weights = null!;
    private Tensor[] _stored = null!;
    private Tensor _h = null!;
    private Tensor _g = null!;

    /// <summary>Rows of the activations (tokens in the batch).</summary>
    [Params(16, 4096)]
    public int Rows { get; set; }

    /// <summary>Intra-op threads.</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        TorchRuntime.EnsureInitialized(null);
        // The library's own gate: resolves and validates the oneDNN switch (and runs its self-test) before it is used.
        if (!MatmulSelection.Choose(CpuMatmulPath.Auto, CPU, ScalarType.Float32, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance).UseOneDnn)
            throw new InvalidOperationException("oneDNN float32 matmuls are not used on this CPU; this benchmark compares their weight layouts.");
        set_num_threads(Threads);
        _weights = [randn(1152, 384), randn(384, 384), randn(1536, 384), randn(384, 1536)];
        _stored = _weights.Select(w => w.t().contiguous()).ToArray();
        _h = randn(Rows, 384);
        _g = randn(Rows, 1536);
    }

    [Benchmark(Baseline = true, Description = "weights [out, in] (x·Wᵀ)")]
    public void AsStored() => Run(i => _weights[i].t());

    [Benchmark(Description = "weights kept [in, out]")]
    public void Transposed() => Run(i => _stored[i].alias());

    private void Run(Func<int, Tensor> operand)
    {
        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        using var fast = OneDnnMatmul.Enter();
        for (var layer = 0; layer < 6; layer++)
            for (var i = 0; i < 4; i++) (i == 3 ? _g : _h).mm(operand(i));
    }
}
