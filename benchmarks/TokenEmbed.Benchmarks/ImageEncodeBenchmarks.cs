using BenchmarkDotNet.Attributes;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// Qwen3-VL encode on the CPU with the golden-size model (4 vision blocks of width 32, 3 text layers of width 64): one
/// 64×64 image, one 448×448 image (784 patches, 196 image tokens), a batch of 8 448×448 images, and a 16-token text query.
/// The figure is images (or queries) per second; with random tiny weights it measures the pipeline (decode-free:
/// images are decoded once in setup), not a real model's cost.
/// </summary>
[MemoryDiagnoser]
public class ImageEncodeBenchmarks
{
    private Llm _llm = null!;
    private Prompt _small = null!;
    private Prompt _large = null!;
    private Prompt[] _batch = null!;
    private Prompt _query = null!;

    [GlobalSetup]
    public void Setup()
    {
        _llm = new Llm(ModelPaths.Qwen3VlGolden, new LlmOptions { Device = "cpu", NumThreads = 2 });
        var small = ImageInput.FromFile(Path.Combine(ModelPaths.Qwen3VlGolden, "image.png"));
        var pixels = new byte[448 * 448 * 3];
        for (var i = 0; i < pixels.Length; i++) pixels[i] = (byte)(i * 31 % 251);
        var large = ImageInput.FromRgb24(pixels, 448, 448);
        int[] Ids(int text) => [.. Enumerable.Range(10, text), 500, 502, 501, 7];
        _small = Prompt.FromTokenIds(Ids(5), [small]);
        _large = Prompt.FromTokenIds(Ids(5), [large]);
        _batch = Enumerable.Range(0, 8).Select(_ => _large).ToArray();
        _query = Prompt.FromTokenIds(Enumerable.Range(20, 16).ToArray());
    }

    [GlobalCleanup]
    public void Cleanup() => _llm.Dispose();

    [Benchmark(Description = "1 image 64×64")]
    public object SmallImage() => _llm.Encode(_small, PoolingTask.TokenEmbed);

    [Benchmark(Description = "1 image 448×448")]
    public object LargeImage() => _llm.Encode(_large, PoolingTask.TokenEmbed);

    [Benchmark(Description = "8 images 448×448", OperationsPerInvoke = 8)]
    public object EightImages() => _llm.Encode(_batch, PoolingTask.TokenEmbed);

    [Benchmark(Description = "16-token text query")]
    public object TextQuery() => _llm.Encode(_query, PoolingTask.TokenEmbed);
}
