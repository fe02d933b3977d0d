using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// Encode throughput on all-MiniLM-L6-v2, CPU: TokenEmbed (TorchSharp) against ONNX Runtime running the same
/// model on the same token ids in the same process and run. 32 prompts × 128 tokens per operation; tokens/s =
/// 4096 / mean. The Ratio column is TokenEmbed's time over ONNX Runtime's (lower is faster).
/// </summary>
[Config(typeof(Config))]
public class EncodeThroughputBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(2).WithIterationCount(8).WithInvocationCount(1).WithUnrollFactor(1));
            AddColumn(new TokensPerSecondColumn(Prompts * Length));
            SummaryStyle = SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend);
        }
    }

    private const int Prompts = 32;
    private const int Length = 128;

    private Llm _llm = null!;
    private OnnxMiniLm _ort = null!;
    private Prompt[] _prompts = null!;
    private long[] _ids = null!;
    private long[] _mask = null!;

    /// <summary>Threads for both engines (libtorch intra-op and ORT intra-op).</summary>
    [Params(2)]
    public int Threads { get; set; }

    /// <summary>
    /// TokenEmbed's compute dtype and CPU matmul path (ONNX Runtime always runs the fp32 graph): <c>float32</c> (the automatic
    /// path, <see cref="CpuMatmulPath.Auto"/>), <c>float32-default</c> (forced libtorch default GEMM) and <c>bfloat16</c>.
    /// </summary>
    [Params("float32", "float32-default", "bfloat16")]
    public string Mode { get; set; } = "float32";

    private string DType => Mode.StartsWith("float32", StringComparison.Ordinal) ? "float32" : Mode;

    [GlobalSetup]
    public void Setup()
    {
        var ids = MiniLmTokenIds.Make(Prompts, Length, seed: 1);
        _prompts = ids.Select(Prompt.FromTokenIds).ToArray();
        (_ids, _mask) = MiniLmTokenIds.ToBatch(ids);
        _llm = new Llm(ModelPaths.MiniLm, BenchOptions.For(Mode, Threads));
        Console.WriteLine($"// backend: {_llm.Backend}");
        _ort = new OnnxMiniLm(Threads);
        // Same model, same ids: check once that both engines agree before timing them.
        var ours = _llm.Encode(_prompts.Take(2).ToArray(), PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var theirs = _ort.Run(_ids.AsSpan(0, 2 * Length).ToArray(), _mask.AsSpan(0, 2 * Length).ToArray(), 2, Length);
        var max = 0f;
        var minCos = 1.0;
        for (var i = 0; i < 2 * Length; i++)
        {
            var a = ours[i / Length].Outputs.Data.AsSpan((i % Length) * 384, 384);
            var b = theirs.AsSpan(i * 384, 384);
            double dot = 0, na = 0, nb = 0;
            for (var k = 0; k < 384; k++)
            {
                max = Math.Max(max, Math.Abs(a[k] - b[k]));
                dot += a[k] * b[k]; na += a[k] * a[k]; nb += b[k] * b[k];
            }
            minCos = Math.Min(minCos, dot / Math.Sqrt(na * nb));
        }
        if (DType == "float32" ? max > 1e-3f : minCos < 0.99)
            throw new InvalidOperationException($"TokenEmbed ({DType}) and ONNX Runtime disagree: max |diff| {max}, min token cosine {minCos}");
        Console.WriteLine($"// parity TokenEmbed ({DType}) vs ONNX Runtime on the benchmark ids: max |diff| = {max:E2}, min token cosine = {minCos:F6}");
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _llm.Dispose();
        _ort.Dispose();
    }

    [Benchmark(Baseline = true, Description = "ONNX Runtime 1.31.1")]
    public float[] OnnxRuntime() => _ort.Run(_ids, _mask, Prompts, Length);

    [Benchmark(Description = "TokenEmbed TokenEmbed")]
    public IReadOnlyList<PoolingRequestOutput> TokenEmbedTokenEmbed() => _llm.Encode(_prompts, PoolingTask.TokenEmbed);

    [Benchmark(Description = "TokenEmbed Embed")]
    public IReadOnlyList<PoolingRequestOutput> TokenEmbedEmbed() => _llm.Encode(_prompts, PoolingTask.Embed);
}

/// <summary>tokens/s = tokens per operation / mean time.</summary>
internal sealed class TokensPerSecondColumn(int tokens) : IColumn
{
    public string Id => "TokensPerSecond";
    public string ColumnName => "tokens/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Tokens encoded per second (operation tokens / mean)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => false;
    public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, SummaryStyle.Default);
    public string GetValue(Summary summary, BenchmarkDotNet.Running.BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        return report?.ResultStatistics is { } s ? (tokens / (s.Mean / 1e9)).ToString("N0") : "-";
    }
}
