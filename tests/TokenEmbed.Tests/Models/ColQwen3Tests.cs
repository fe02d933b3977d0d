using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// ColQwen3-style layouts built around the Qwen3-VL golden weights with a seeded head: Tomoro (vlm.model.*,
/// embedding_proj_layer, embed_dim) and OpenSearch (unprefixed, custom_text_proj sliced to dims). Expected token vectors
/// are normalize(W·h + b) over transformers' last_hidden_state, in plain C#; Score of a text query against an image
/// document is MaxSim over those.
/// </summary>
[NonParallelizable]
public sealed class ColQwen3Tests
{
    private const int Hidden = 64;
    private static string Golden => Qwen3VlTests.Folder;

    private static TempFolder Build(string architecture, string prefix, string head, int outFeatures, Dictionary<string, object>? fields, out float[] w, out float[] b)
    {
        var f = new TempFolder().CopyFrom(Golden, "preprocessor_config.json");
        var tensors = Checkpoints.ReadAll(Golden).ToDictionary(kv => prefix + kv.Key, kv => kv.Value);
        w = Reference.Gaussian(outFeatures * Hidden, 31, 0.1);
        b = Reference.Gaussian(outFeatures, 32, 0.1);
        tensors[head + ".weight"] = ([outFeatures, Hidden], w);
        tensors[head + ".bias"] = ([outFeatures], b);
        if (prefix == "vlm.model.") tensors["vlm.lm_head.weight"] = ([512, Hidden], new float[512 * Hidden]);
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Golden, "config.json")))!.AsObject();
        config["architectures"] = new JsonArray(architecture);
        foreach (var (k, v) in fields ?? []) config[k] = JsonValue.Create(v);
        File.WriteAllText(f.File("config.json"), config.ToJsonString());
        return f;
    }

    /// <summary>normalize((W·h + b)[..dim]) for the valid rows of a golden.</summary>
    private static float[] Expected(float[] hidden, float[] w, float[] b, int outFeatures, int dim)
    {
        var y = Reference.Project(hidden, Hidden, w, outFeatures);
        var n = y.Length / outFeatures;
        var cut = new float[n * dim];
        for (var i = 0; i < n; i++)
        for (var j = 0; j < dim; j++)
            cut[i * dim + j] = y[i * outFeatures + j] + b[j];
        return Reference.Normalize(cut, dim);
    }

    [TestCase("ColQwen3", "vlm.model.", "embedding_proj_layer", 24, "embed_dim", 24)]
    [TestCase("OpsColQwen3Model", "", "custom_text_proj", 32, "dims", 16)]
    public void TokenEmbedAndScoreOverTextAndImages(string architecture, string prefix, string head, int outFeatures, string dimField, int dim)
    {
        using var f = Build(architecture, prefix, head, outFeatures, new() { [dimField] = dim }, out var w, out var b);
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That((llm.Architecture, llm.Dimension, llm.IsLateInteraction), Is.EqualTo((architecture, dim, true)));

        using var text = Qwen3VlTests.Read("golden.safetensors");
        using var image = Qwen3VlTests.Read("golden_image.safetensors");
        var query = Prompt.FromTokenIds(text.Row(0));
        var document = Prompt.FromTokenIds(image.Row(0), [ImageInput.FromFile(Path.Combine(Golden, "image.png"))]);
        var outputs = llm.Encode([query, document], PoolingTask.TokenEmbed);
        var expectedQ = Expected(text.Expected(0), w, b, outFeatures, dim);
        var expectedD = Expected(image.Expected(0), w, b, outFeatures, dim);
        var max = Math.Max(Reference.MaxAbsDiff(outputs[0].Outputs.Data, expectedQ), Reference.MaxAbsDiff(outputs[1].Outputs.Data, expectedD));
        TestContext.Out.WriteLine($"{architecture} ({prefix}{head} [{outFeatures}, {Hidden}] → {dim}): token vectors max |diff| = {max:E2}");
        Assert.That(outputs[1].Outputs.Shape, Is.EqualTo(new[] { image.Row(0).Length, dim }));
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        var score = llm.Score(query, document)[0].Outputs.Score;
        var expectedScore = Reference.MaxSim(expectedQ, expectedD, dim);
        TestContext.Out.WriteLine($"{architecture} Score(text query, image document) = {score:F5}, reference MaxSim {expectedScore:F5}");
        Assert.That(score, Is.EqualTo(expectedScore).Within(1e-4));
    }

    [Test]
    public void AHeadNarrowerThanTheConfiguredDimIsRefused()
    {
        using var f = Build("OpsColQwen3Model", "", "custom_text_proj", 8, new() { ["dims"] = 16 }, out _, out _);
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;
        Assert.That(e.TensorName, Is.EqualTo("custom_text_proj.weight"));
    }

    [Test]
    public void ForConditionalGenerationLayoutLoadsAsTheBackbone()
    {
        using var f = new TempFolder().CopyFrom(Golden, "preprocessor_config.json");
        var tensors = Checkpoints.ReadAll(Golden).ToDictionary(kv => "model." + kv.Key, kv => kv.Value);
        tensors["lm_head.weight"] = ([512, Hidden], new float[512 * Hidden]);
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        Checkpoints.WriteConfig(Golden, f.Path, "Qwen3VLForConditionalGeneration");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        using var image = Qwen3VlTests.Read("golden_image.safetensors");
        var o = llm.Encode(Prompt.FromTokenIds(image.Row(0), [ImageInput.FromFile(Path.Combine(Golden, "image.png"))]), PoolingTask.TokenEmbed,
            new PoolingParams { Normalize = false })[0];
        Assert.That(Reference.MaxAbsDiff(o.Outputs.Data, image.Expected(0)), Is.LessThanOrEqualTo(1e-4f));
        Assert.That(llm.Encode(Prompt.FromTokenIds(image.Row(0), [ImageInput.FromFile(Path.Combine(Golden, "image.png"))]), PoolingTask.Embed)[0].Outputs.Shape,
            Is.EqualTo(new[] { Hidden }), "Embed pools the last token");
    }
}

/// <summary>
/// Nemotron colembed (Qwen3VLNemotronEmbedModel) as NVIDIA's modeling code runs it: bidirectional text layers, the hidden
/// state before the final norm, normalized, no projection. No transformers golden covers it, so the expectation is the
/// plain-C# reference decoder, first checked against the Qwen3-VL text golden (causal, with the norm).
/// </summary>
[NonParallelizable]
public sealed class NemotronColEmbedTests
{
    private const int Hidden = 64;
    private static string Golden => Qwen3VlTests.Folder;
    private static ReferenceDecoder.Shape Shape(bool causal, bool norm) =>
        new(Hidden, 4, 2, 32, 3, 1e-6, 5000000.0, QkNorm: true, Causal: causal, FinalNorm: norm, Prefix: "language_model.");

    [Test]
    public void BidirectionalPreNormTokenVectorsMatchTheReference()
    {
        var weights = Checkpoints.ReadAll(Golden);
        using var text = Qwen3VlTests.Read("golden.safetensors");
        var ids = text.Row(1);
        var selfCheck = Reference.MaxAbsDiff(ReferenceDecoder.Forward(weights, ids, Shape(causal: true, norm: true)), text.Expected(1));
        TestContext.Out.WriteLine($"reference decoder vs the qwen3_vl text golden: max |diff| = {selfCheck:E2}");
        Assert.That(selfCheck, Is.LessThanOrEqualTo(1e-4f));

        using var f = new TempFolder().CopyFrom(Golden, "preprocessor_config.json");
        var tensors = weights.ToDictionary(kv => "model." + kv.Key, kv => kv.Value);
        tensors["lm_head.weight"] = ([512, Hidden], new float[512 * Hidden]);
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(Golden, "config.json")))!.AsObject();
        config["architectures"] = new JsonArray("Qwen3VLNemotronEmbedModel");
        config["model_type"] = "qwen3_vl_nemotron_embed";
        config["pooling"] = "colbert";
        File.WriteAllText(f.File("config.json"), config.ToJsonString());

        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That((llm.Dimension, llm.IsLateInteraction), Is.EqualTo((Hidden, true)));
        var o = llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed)[0].Outputs.Data;
        var expected = Reference.Normalize(ReferenceDecoder.Forward(weights, ids, Shape(causal: false, norm: false)), Hidden);
        var max = Reference.MaxAbsDiff(o, expected);
        var causal = Reference.MaxAbsDiff(o, Reference.Normalize(ReferenceDecoder.Forward(weights, ids, Shape(causal: true, norm: true)), Hidden));
        TestContext.Out.WriteLine($"Nemotron colembed vs bidirectional pre-norm reference: max |diff| = {max:E2} (vs the causal post-norm path: {causal:E2})");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
        Assert.That(causal, Is.GreaterThan(1e-2f), "the causal, normed path is really different");

        // Images go through the same vision tower and splice.
        var image = llm.Encode(Prompt.FromTokenIds([5, 500, 502, 501, 9], [ImageInput.FromFile(Path.Combine(Golden, "image.png"))]), PoolingTask.TokenEmbed)[0];
        Assert.That(image.Outputs.Shape, Is.EqualTo(new[] { 8, Hidden }));
    }
}
