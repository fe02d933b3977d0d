using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using TokenEmbed;

// GPU encode benchmark (issue 15), TokenEmbed's half: reads the inputs peer.py wrote (inputs.json: the fixed batch and the
// variable-length corpus as token ids), encodes them on CUDA in each dtype, and writes tokens/s plus the cosine of the
// CUDA token vectors against float32 CPU to results-dotnet.json. peer.py measures PyTorch and transformers on the same ids.
// usage: TokenEmbed.GpuBench <work dir with inputs.json and the model folders> <out dir>
var work = args.Length > 0 ? args[0] : throw new ArgumentException("usage: TokenEmbed.GpuBench WORK OUT");
var outDir = args.Length > 1 ? args[1] : work;
using var inputs = JsonDocument.Parse(File.ReadAllText(Path.Combine(work, "inputs.json")));
var results = new List<Dictionary<string, object>>();
foreach (var model in inputs.RootElement.GetProperty("models").EnumerateArray().Select(e => e.GetString()!))
{
    var folder = Path.Combine(work, model);
    var fixedIds = Read(inputs.RootElement.GetProperty("fixed"));
    var corpus = Read(inputs.RootElement.GetProperty("corpus"));
    float[][] cpu;
    using (var reference = new Llm(folder, new LlmOptions { Device = "cpu", DType = "float32" }))
        cpu = reference.Encode(fixedIds.Take(4).Select(Prompt.FromTokenIds).ToArray(), PoolingTask.TokenEmbed)
            .Select(o => o.Outputs.Data).ToArray();
    foreach (var dtype in new[] { "float16", "bfloat16", "float32" })
    {
        using var llm = new Llm(folder, new LlmOptions { Device = "cuda", DType = dtype, MaxBatchTokens = 64 * 512 });
        var cos = MinTokenCosine(llm.Encode(fixedIds.Take(4).Select(Prompt.FromTokenIds).ToArray(), PoolingTask.TokenEmbed).Select(o => o.Outputs.Data).ToArray(), cpu, llm.Dimension);
        foreach (var (name, set) in new[] { ("fixed", fixedIds), ("corpus", corpus) })
        {
            var prompts = set.Select(Prompt.FromTokenIds).ToArray();
            llm.Encode(prompts, PoolingTask.TokenEmbed);   // warm-up (cuBLAS handles, allocator)
            var times = new List<double>();
            for (var r = 0; r < 5; r++)
            {
                var sw = Stopwatch.StartNew();
                llm.Encode(prompts, PoolingTask.TokenEmbed);
                times.Add(sw.Elapsed.TotalSeconds);
            }
            var tokens = set.Sum(p => p.Length);
            var median = times.Order().ElementAt(times.Count / 2);
            results.Add(new() { ["engine"] = "tokenembed", ["model"] = model, ["dtype"] = dtype, ["workload"] = name,
                ["tokens_per_s"] = tokens / median, ["min_token_cosine_vs_cpu_fp32"] = cos, ["backend"] = llm.Backend });
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tokenembed {model} {dtype} {name}: {tokens / median:F0} tokens/s, cosine vs CPU fp32 {cos:F5}"));
        }
    }
}
File.WriteAllText(Path.Combine(outDir, "results-dotnet.json"), JsonSerializer.Serialize(results, new JsonSerializerOptions { WriteIndented = true }));
return 0;

static int[][] Read(JsonElement e) => e.EnumerateArray().Select(p => p.EnumerateArray().Select(x => x.GetInt32()).ToArray()).ToArray();

static double MinTokenCosine(float[][] a, float[][] b, int dim)
{
    var min = 1.0;
    for (var p = 0; p < a.Length; p++)
        for (var t = 0; t < a[p].Length / dim; t++)
        {
            double dot = 0, na = 0, nb = 0;
            for (var k = 0; k < dim; k++)
            {
                var x = a[p][t * dim + k];
                var y = b[p][t * dim + k];
                dot += x * y; na += x * x; nb += y * y;
            }
            min = Math.Min(min, dot / Math.Sqrt(na * nb));
        }
    return min;
}
