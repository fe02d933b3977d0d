namespace TokenEmbed;

/// <summary>How an <see cref="Llm"/> loads and runs its model.</summary>
public sealed class LlmOptions
{
    /// <summary>
    /// <c>"auto"</c> (CUDA when available, else CPU), <c>"cpu"</c>, <c>"cuda"</c> or <c>"cuda:N"</c>. Default <c>"auto"</c>.
    /// </summary>
    public string Device { get; set; } = "auto";

    /// <summary>
    /// <c>"auto"</c>, <c>"float32"</c>, <c>"float16"</c> or <c>"bfloat16"</c>. <c>"auto"</c> is float32 on CPU and,
    /// on CUDA, the checkpoint's dtype when it is half precision, else float16 (vLLM's rule). Projection heads,
    /// pooling and normalization always run in float32.
    /// </summary>
    public string DType { get; set; } = "auto";

    /// <summary>
    /// A PyTorch installation's <c>torch/lib</c> folder to take libtorch (CPU or CUDA) from instead of the app's
    /// libtorch package; the <c>TOKENEMBED_TORCH_LIB</c> environment variable does the same. Applies to the first
    /// <see cref="Llm"/> of the process (the native runtime is loaded once).
    /// </summary>
    public string? TorchLibraryPath { get; set; }

    /// <summary>
    /// Loads the folder as this architecture instead of config.json's <c>architectures</c> (vLLM's
    /// <c>hf_overrides={"architectures": [...]}</c>), e.g. <c>"BgeM3EmbeddingModel"</c> for a bge-m3 folder, whose config.json
    /// says <c>XLMRobertaModel</c>. <see langword="null"/> keeps config.json's.
    /// </summary>
    public string? Architecture { get; set; }

    /// <summary>Overrides the maximum prompt length in tokens (vLLM's <c>max_model_len</c>); never above the model's position limit.</summary>
    public int? MaxModelLength { get; set; }

    /// <summary>
    /// The most tokens (padding included) one forward batch may hold (a longer prompt runs alone). <see langword="null"/> (the
    /// default): 2048 on the CPU, where activations that stay in cache matter more than batch size (256 prompts of 8–256
    /// tokens run 7× faster than with 16384 on a 2-core AMD EPYC), and 16384 on CUDA.
    /// </summary>
    public int? MaxBatchTokens { get; set; }

    /// <summary>The most prompts one forward batch may hold. Default 256.</summary>
    public int MaxBatchSize { get; set; } = 256;

    /// <summary>
    /// The hub revision (branch, tag or commit) when the model is a Hugging Face hub id; default <c>main</c>. Ignored for
    /// local folders.
    /// </summary>
    public string Revision { get; set; } = "main";

    /// <summary>
    /// Which kernels run the float32 linear layers on the CPU. <see cref="CpuMatmulPath.Auto"/> (the default) takes oneDNN where a
    /// one-off self-test proves it float32-exact (and fast), else libtorch's default; the other values force a path (for
    /// benchmarks, or as an escape hatch). <see cref="Llm.Backend"/> says which one runs. No effect on CUDA or in half precision.
    /// </summary>
    public CpuMatmulPath CpuMatmul { get; set; } = CpuMatmulPath.Auto;

    /// <summary>
    /// Where the library logs (the chosen backend, downloads, load times); <see langword="null"/> logs nothing.
    /// </summary>
    public Microsoft.Extensions.Logging.ILoggerFactory? LoggerFactory { get; set; }

    /// <summary>Intra-op CPU threads for libtorch (process-wide); <see langword="null"/> leaves libtorch's default.</summary>
    public int? NumThreads { get; set; }
}
