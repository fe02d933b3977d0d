using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// Issue 14's workload 2: 256 prompts of random length 8–256 (all-MiniLM-L6-v2, CPU). TokenEmbed gets them in one
/// <c>Encode</c> call (it sorts by length and batches); ONNX Runtime runs them as a user would, in input order, batches of 32
/// padded to the longest prompt of the batch. The Ratio column is TokenEmbed's time over ONNX Runtime's.
/// </summary>
[Config(typeof(Config))]
public class VariableLengthBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(2).WithIterationCount(8).WithInvocationCount(1).WithUnrollFactor(1));
            SummaryStyle = SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend);
        }
    }

    private const int Count = 256;
    private const int OrtBatch = 32;

    private Llm _llm = null!;
    private OnnxMiniLm _ort = null!;
    private Prompt[] _prompts = null!;
    private (long[] Ids, long[] Mask, int Rows, int Length)[] _ortBatches = null!;

    /// <summary>Threads for both engines.</summary>
    [Params(2)]
    public int Threads { get; set; }

    /// <summary>TokenEmbed's mode (see <see cref="BenchOptions"/>).</summary>
    [Params("float32", "float32-default")]
    public string Mode { get; set; } = "float32";

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(7);
        var prompts = Enumerable.Range(0, Count).Select(i => MiniLmTokenIds.Make(1, rng.Next(8, 257), seed: 100 + i)[0]).ToArray();
        _prompts = prompts.Select(Prompt.FromTokenIds).ToArray();
        _ortBatches = prompts.Chunk(OrtBatch).Select(chunk =>
        {
            var (ids, mask) = MiniLmTokenIds.ToBatch(chunk);
            return (ids, mask, chunk.Length, ids.Length / chunk.Length);
        }).ToArray();
        _llm = new Llm(ModelPaths.MiniLm, BenchOptions.For(Mode, Threads));
        Console.WriteLine($"// backend: {_llm.Backend}");
        _ort = new OnnxMiniLm(Threads);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _llm.Dispose();
        _ort.Dispose();
    }

    [Benchmark(Baseline = true, Description = "ONNX Runtime 1.31.1 (input order, batches of 32)")]
    public int OnnxRuntime()
    {
        var n = 0;
        foreach (var (ids, mask, rows, length) in _ortBatches) n += _ort.Run(ids, mask, rows, length).Length;
        return n;
    }

    [Benchmark(Description = "TokenEmbed Encode (TokenEmbed)")]
    public IReadOnlyList<PoolingRequestOutput> TokenEmbed() => _llm.Encode(_prompts, PoolingTask.TokenEmbed);
}

/// <summary>
/// Issue 14's workload 3: one 16-token query, latency (median and P95 columns). TokenEmbed through <c>Llm.Encode</c>
/// (the whole request path) and as a bare backbone forward, against ONNX Runtime on the same ids.
/// </summary>
[Config(typeof(Config))]
public class SingleQueryLatencyBenchmarks
{
    private sealed class Config : ManualConfig
    {
        public Config()
        {
            AddJob(Job.Default.WithWarmupCount(5).WithIterationCount(20).WithInvocationCount(64).WithUnrollFactor(1));
            AddColumn(StatisticColumn.Median, StatisticColumn.P95);
            SummaryStyle = SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend);
        }
    }

    private Llm _llm = null!;
    private OnnxMiniLm _ort = null!;
    private Prompt _prompt = null!;
    private long[] _ids = null!;
    private long[] _mask = null!;

    /// <summary>Threads for both engines.</summary>
    [Params(2)]
    public int Threads { get; set; }

    /// <summary>TokenEmbed's mode (see <see cref="BenchOptions"/>).</summary>
    [Params("float32", "float32-default")]
    public string Mode { get; set; } = "float32";

    [GlobalSetup]
    public void Setup()
    {
        var ids = MiniLmTokenIds.Make(1, 16, seed: 3);
        _prompt = Prompt.FromTokenIds(ids[0]);
        (_ids, _mask) = MiniLmTokenIds.ToBatch(ids);
        _llm = new Llm(ModelPaths.MiniLm, BenchOptions.For(Mode, Threads));
        Console.WriteLine($"// backend: {_llm.Backend}");
        _ort = new OnnxMiniLm(Threads);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _llm.Dispose();
        _ort.Dispose();
    }

    [Benchmark(Baseline = true, Description = "ONNX Runtime 1.31.1")]
    public float[] OnnxRuntime() => _ort.Run(_ids, _mask, 1, 16);

    [Benchmark(Description = "TokenEmbed Encode (TokenEmbed)")]
    public IReadOnlyList<PoolingRequestOutput> TokenEmbed() => _llm.Encode(_prompt, PoolingTask.TokenEmbed);
}
