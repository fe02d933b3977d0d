using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models;
using TokenEmbed.Pooling;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// Every kind of head reports the width it really produces (<see cref="Llm.Dimension"/>), and the pooler applies each
/// request's own parameters inside one forward batch.
/// </summary>
[NonParallelizable]
public sealed class ArchitectureTests
{
    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    private static string Golden(string name) => TestPaths.Fixture("goldens", name);

    /// <summary>hidden_size read from the golden's config.json (not through the library).</summary>
    private static int HiddenOf(string golden) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Golden(golden), "config.json")))!["hidden_size"]!.GetValue<int>();

    /// <summary>A golden's weights under <paramref name="architecture"/>, plus extra tensors and optionally one Dense module.</summary>
    private static TempFolder Build(string golden, string architecture, Dictionary<string, (long[], float[])>? extra = null,
        int? denseOut = null, bool pooling = false)
    {
        var f = new TempFolder();
        var tensors = Checkpoints.ReadAll(Golden(golden));
        foreach (var (k, v) in extra ?? []) tensors[k] = v;
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        Checkpoints.WriteConfig(Golden(golden), f.Path, architecture);
        if (denseOut is not { } o) return f;
        var h = HiddenOf(golden);
        var modules = new List<string> { """{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"}""" };
        if (pooling)
        {
            modules.Add("""{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}""");
            Directory.CreateDirectory(f.File("1_Pooling"));
            File.WriteAllText(f.File("1_Pooling/config.json"), """{"pooling_mode_mean_tokens": true}""");
        }
        modules.Add("""{"idx":2,"name":"2","path":"2_Dense","type":"pylate.models.Dense.Dense"}""");
        Directory.CreateDirectory(f.File("2_Dense"));
        File.WriteAllText(f.File("2_Dense/config.json"), $$"""{"in_features":{{h}},"out_features":{{o}},"bias":false}""");
        SafeTensorsWriter.WriteF32(f.File("2_Dense/model.safetensors"),
            new Dictionary<string, (long[], float[])> { ["linear.weight"] = ([o, h], Reference.Gaussian(o * h, 5, 0.1)) });
        File.WriteAllText(f.File("modules.json"), "[" + string.Join(",", modules) + "]");
        return f;
    }

    private static Dictionary<string, (long[], float[])> Linear(string key, int outF, int inF) =>
        new() { [key] = ([outF, inF], Reference.Gaussian(outF * inF, 3, 0.1)) };

    /// <summary>One case per head kind: (golden, architecture, extra weights, Dense width, Pooling module, expected Dimension, late interaction).</summary>
    private static IEnumerable<TestCaseData> HeadKinds()
    {
        yield return new TestCaseData("bert", "BertModel", null, null, false, 64, false).SetName("no head (BertModel)");
        yield return new TestCaseData("qwen3", "Qwen3ForCausalLM", null, null, false, 64, false).SetName("causal LM conversion (no head)");
        yield return new TestCaseData("bert", "HF_ColBERT", Linear("linear.weight", 24, 64), null, false, 24, true).SetName("HF_ColBERT linear [24, 64]");
        yield return new TestCaseData("bert", "BertModel", null, 16, true, 16, false).SetName("sentence-transformers Pooling + Dense [16, 64]");
        yield return new TestCaseData("modernbert", "ModernBertModel", null, 40, false, 40, true).SetName("PyLate Dense [40, 64] without Pooling");
        yield return new TestCaseData("modernbert", "ColBERTModernBertModel", null, 20, false, 20, true).SetName("ColBERTModernBertModel Dense [20, 64]");
        yield return new TestCaseData("lfm2", "ColBERTLfm2Model", null, 12, false, 12, true).SetName("ColBERTLfm2Model Dense [12, 64]");
    }

    [TestCaseSource(nameof(HeadKinds))]
    public void DimensionIsTheWidthTheHeadProduces(string golden, string architecture, Dictionary<string, (long[], float[])>? extra,
        int? denseOut, bool pooling, int expected, bool lateInteraction)
    {
        using var f = Build(golden, architecture, extra, denseOut, pooling);
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That(llm.Dimension, Is.EqualTo(expected));
        Assert.That(llm.IsLateInteraction, Is.EqualTo(lateInteraction));
        var prompt = Prompt.FromTokenIds([2, 7, 11, 5]);
        Assert.That(llm.Encode(prompt, PoolingTask.TokenEmbed)[0].Outputs.Shape, Is.EqualTo(new[] { 4, expected }));
        Assert.That(llm.Encode(prompt, PoolingTask.Embed)[0].Outputs.Shape, Is.EqualTo(new[] { expected }));
    }

    /// <summary>
    /// One forward batch pooled for three requests with different tasks, Dimensions and Normalize equals pooling each
    /// request alone (through Llm.Encode, a batch of one).
    /// </summary>
    [Test]
    public void OneBatchPoolsEachRequestWithItsOwnParameters()
    {
        using var f = Build("bert", "HF_ColBERT", Linear("linear.weight", 24, 64));
        int[][] ids = [[2, 7, 11, 5, 9, 4], [2, 8, 3], [2, 6, 12, 13, 4]];
        PoolingParams[] ps = [new() { Dimensions = 8 }, new() { Normalize = false }, new() { Dimensions = 16 }];
        PoolingTask[] tasks = [PoolingTask.TokenEmbed, PoolingTask.TokenEmbed, PoolingTask.Embed];

        using var model = PoolingModel.Load(f.Path, new LlmOptions { Device = "cpu" });
        var requests = Enumerable.Range(0, 3).Select(i => PoolingRequest.Resolve(tasks[i], ps[i], model.Pooler)).ToArray();
        PoolingOutput[] mixed;
        using (NewDisposeScope())
        using (inference_mode())
        {
            var t = ids.Max(x => x.Length);
            var idData = ids.SelectMany(x => x.Concat(Enumerable.Repeat(0, t - x.Length)).Select(v => (long)v)).ToArray();
            var maskData = ids.SelectMany(x => Enumerable.Range(0, t).Select(j => j < x.Length ? 1L : 0L)).ToArray();
            var mask = tensor(maskData, [3, t]);
            var hidden = model.Backbone.Forward(new ModelInput(tensor(idData, [3, t]), mask));
            mixed = model.Pooler.Pool(hidden, mask, ids, requests);
        }

        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        int[][] shapes = [[6, 8], [3, 24], [16]];
        for (var i = 0; i < 3; i++)
        {
            var alone = llm.Encode(Prompt.FromTokenIds(ids[i]), tasks[i], ps[i])[0].Outputs;
            Assert.That(mixed[i].Shape, Is.EqualTo(shapes[i]), $"request {i} has its own shape");
            Assert.That(alone.Shape, Is.EqualTo(shapes[i]));
            var diff = Reference.MaxAbsDiff(mixed[i].Data, alone.Data);
            TestContext.Out.WriteLine($"request {i} ({tasks[i]}, {ps[i].Dimensions?.ToString() ?? "full"}, normalize {ps[i].Normalize ?? true}): mixed vs alone max |diff| = {diff:E2}");
            Assert.That(diff, Is.LessThanOrEqualTo(1e-6f));
        }
        var norm = Math.Sqrt(mixed[1].Data.AsSpan(0, 24).ToArray().Sum(v => (double)v * v));
        Assert.That(norm, Is.Not.EqualTo(1.0).Within(1e-3), "request 1 is not normalized although the others are");
    }

    /// <summary>
    /// Explicit arange positions and input embeddings equal to the token lookup give the same states; spread positions
    /// (0, 2, 4, 6: RoPE is shift-invariant, so a plain shift would not show) do not.
    /// </summary>
    [TestCase("qwen3")]
    [TestCase("lfm2")]
    [TestCase("modernbert")]
    [TestCase("xlm_roberta")]
    [TestCase("bert")]
    public void ModelInputPositionsAndEmbeddingsReachTheBackbone(string golden)
    {
        using var model = PoolingModel.Load(Golden(golden), new LlmOptions { Device = "cpu" });
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var ids = tensor(new long[] { 2, 7, 11, 5, 9, 4, 3, 8 }, [2, 4]);
        var mask = ones(2, 4, ScalarType.Int64);
        var plain = model.Backbone.Forward(new ModelInput(ids, mask));
        var arange = TorchSharp.torch.arange(4, ScalarType.Int64).unsqueeze(0).expand(2, 4);
        var offset = golden == "xlm_roberta" ? 2 : 0;   // RoBERTa positions count from pad + 1
        var withPositions = model.Backbone.Forward(new ModelInput(ids, mask, PositionIds: arange + offset));
        var embedded = model.Backbone.Forward(new ModelInput(ids, mask, InputsEmbeds: EmbeddingLookup(model, golden, ids)));
        var spread = model.Backbone.Forward(new ModelInput(ids, mask, PositionIds: arange * 2 + offset));
        Assert.That((withPositions - plain).abs().max().item<float>(), Is.LessThanOrEqualTo(1e-6f), "explicit default positions");
        Assert.That((embedded - plain).abs().max().item<float>(), Is.LessThanOrEqualTo(1e-6f), "input embeddings equal to the lookup");
        Assert.That((spread - plain).abs().max().item<float>(), Is.GreaterThan(1e-3f), "other positions change the states");
    }

    /// <summary>The token-embedding rows for <paramref name="ids"/>, read from the checkpoint file (not from the module).</summary>
    private static Tensor EmbeddingLookup(PoolingModel model, string golden, Tensor ids)
    {
        var key = golden switch
        {
            "qwen3" or "lfm2" => "embed_tokens.weight",
            "modernbert" => "embeddings.tok_embeddings.weight",
            _ => "embeddings.word_embeddings.weight",
        };
        using var w = WeightSet.OpenCheckpoint(Golden(golden));
        var table = tensor(w.ReadAsFloat32(key), w.Get(key).Shape);
        return table.index_select(0, ids.flatten()).view(ids.shape[0], ids.shape[1], -1);
    }
}
