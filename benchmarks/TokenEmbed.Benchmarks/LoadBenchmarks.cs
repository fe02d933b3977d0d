using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;

namespace TokenEmbed.Benchmarks;

/// <summary>Model load time: an Llm over the all-MiniLM-L6-v2 folder against an ONNX Runtime session over the same model.</summary>
[SimpleJob(RunStrategy.ColdStart, launchCount: 1, warmupCount: 1, iterationCount: 8)]
public class LoadBenchmarks
{
    [GlobalSetup]
    public void Setup() => new Llm(ModelPaths.MiniLm, new LlmOptions { Device = "cpu" }).Dispose(); // native runtime loaded once per process

    [Benchmark(Baseline = true, Description = "ONNX Runtime session")]
    public void OnnxRuntimeSession() => new OnnxMiniLm(2).Dispose();

    [Benchmark(Description = "TokenEmbed Llm")]
    public void TokenEmbedLlm() => new Llm(ModelPaths.MiniLm, new LlmOptions { Device = "cpu" }).Dispose();
}
