using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// A TokenEmbed-vs-ONNX Runtime benchmark on all-MiniLM-L6-v2: both engines with <see cref="Threads"/> threads, TokenEmbed in
/// <see cref="Mode"/> (<see cref="BenchOptions"/>), loaded once per parameter set.
/// </summary>
public abstract class OrtPeerBenchmark
{
    /// <summary>TokenEmbed on the CPU.</summary>
    protected Llm Llm { get; private set; } = null!;

    /// <summary>ONNX Runtime on the same model.</summary>
    internal OnnxMiniLm Ort { get; private set; } = null!;

    /// <summary>Threads for both engines.</summary>
    [Params(2)]
    public int Threads { get; set; }

    /// <summary>TokenEmbed's mode (see <see cref="BenchOptions"/>).</summary>
    [Params("float32", "float32-default")]
    public string Mode { get; set; } = "float32";

    /// <summary>Loads both engines, then the workload's inputs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        Llm = new Llm(ModelPaths.MiniLm, BenchOptions.For(Mode, Threads));
        Console.WriteLine($"// backend: {Llm.Backend}");
        Ort = new OnnxMiniLm(Threads);
        MakeInputs();
    }

    /// <summary>Builds the workload's prompts and ONNX Runtime batches.</summary>
    protected abstract void MakeInputs();

    /// <summary>Frees both engines.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        Llm.Dispose();
        Ort.Dispose();
    }
}

/// <summary>
/// Issue 14's workload 2: 256 prompts of random length 8–256 (all-MiniLM-L6-v2, CPU). TokenEmbed gets them in one
/// <c>Encode</c> call (it sorts by length and batches); ONNX Runtime runs them as a user would, in input order, batches of 32
/// padded to the longest prompt of the batch. The Ratio column is TokenEmbed's time over ONNX Runtime's.
/// </summary>
[Config(typeof(Config))]
public class VariableLengthBenchmarks : OrtPeerBenchmark
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

    private Prompt[] _prompts = null!;
    private (long[] Ids, long[] Mask, int Rows, int Length)[] _ortBatches = null!;

    /// <inheritdoc />
    protected override void MakeInputs()
    {
        var rng = new Random(7);
        var prompts = Enumerable.Range(0, Count).Select(i => MiniLmTokenIds.Make(1, rng.Next(8, 257), seed: 100 + i)[0]).ToArray();
        _prompts = prompts.Select(Prompt.FromTokenIds).ToArray();
        _ortBatches = prompts.Chunk(OrtBatch).Select(chunk =>
        {
            var (ids, mask) = MiniLmTokenIds.ToBatch(chunk);
            return (ids, mask, chunk.Length, ids.Length / chunk.Length);
        }).ToArray();
    }

    [Benchmark(Baseline = true, Description = "ONNX Runtime 1.31.1 (input order, batches of 32)")]
    public int OnnxRuntime()
    {
        var n = 0;
        foreach (var (ids, mask, rows, length) in _ortBatches) n += Ort.Run(ids, mask, rows, length).Length;
        return n;
    }

    [Benchmark(Description = "TokenEmbed Encode (TokenEmbed)")]
    public IReadOnlyList<PoolingRequestOutput> TokenEmbed() => Llm.Encode(_prompts, PoolingTask.TokenEmbed);
}

/// <summary>
/// Issue 14's workload 3: one 16-token query, latency (median and P95 columns). TokenEmbed through <c>Llm.Encode</c>
/// (the whole request path) and as a bare backbone forward, against ONNX Runtime on the same ids.
/// </summary>
[Config(typeof(Config))]
public class SingleQueryLatencyBenchmarks : OrtPeerBenchmark
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

    private Prompt _prompt = null!;
    private long[] _ids = null!;
    private long[] _mask = null!;

    /// <inheritdoc />
    protected override void MakeInputs()
    {
        var ids = MiniLmTokenIds.Make(1, 16, seed: 3);
        _prompt = Prompt.FromTokenIds(ids[0]);
        (_ids, _mask) = MiniLmTokenIds.ToBatch(ids);
    }

    [Benchmark(Baseline = true, Description = "ONNX Runtime 1.31.1")]
    public float[] OnnxRuntime() => Ort.Run(_ids, _mask, 1, 16);

    [Benchmark(Description = "TokenEmbed Encode (TokenEmbed)")]
    public IReadOnlyList<PoolingRequestOutput> TokenEmbed() => Llm.Encode(_prompt, PoolingTask.TokenEmbed);
}
