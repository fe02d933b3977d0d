namespace TokenEmbed.Benchmarks;

/// <summary>The <see cref="LlmOptions"/> of a benchmark mode: <c>float32</c> (automatic matmul path), <c>float32-default</c>, <c>bfloat16</c>.</summary>
internal static class BenchOptions
{
    public static LlmOptions For(string mode, int threads) => new()
    {
        Device = "cpu",
        NumThreads = threads,
        DType = mode == "bfloat16" ? "bfloat16" : "float32",
        CpuMatmul = mode == "float32-default" ? CpuMatmulPath.Default : CpuMatmulPath.Auto,
    };
}
