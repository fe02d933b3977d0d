using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// Checkpoint layouts users have for decoders, built from the golden weights: <c>*ForCausalLM</c> converted for pooling
/// (vLLM <c>as_embedding_model</c>), tied embeddings, Qwen2, LFM2 with a PyLate Dense head, and strict-loading errors.
/// </summary>
[NonParallelizable]
public sealed class DecoderLayoutTests
{
    private static readonly LlmOptions Cpu = new() { Device = "cpu" };

    private static TempFolder Build(DecoderGolden g, Action<JsonObject> editConfig, Action<Dictionary<string, (long[] Shape, float[] Data)>> editWeights, string prefix = "")
    {
        var folder = new TempFolder();
        g.CopyTo(folder, editConfig);
        var tensors = Checkpoints.ReadAll(g.Folder).ToDictionary(kv => prefix + kv.Key, kv => kv.Value);
        editWeights(tensors);
        SafeTensorsWriter.WriteF32(folder.File("model.safetensors"), tensors);
        return folder;
    }

    private static void Architecture(JsonObject c, string name) => c["architectures"] = new JsonArray(name);

    private static ModelLoadException LoadFails(string path) =>
        Assert.Throws<ModelLoadException>(() => new Llm(path, Cpu).Dispose())!;

    [Test]
    public void Qwen3ForCausalLmBecomesAPoolingModel()
    {
        var g = DecoderGolden.Load("qwen3");
        using var f = Build(g, c => Architecture(c, "Qwen3ForCausalLM"),
            t => t["lm_head.weight"] = ([1000, 64], Reference.Gaussian(1000 * 64, seed: 3, scale: 0.05)), prefix: "model.");
        using var llm = new Llm(f.Path, Cpu);
        Assert.That(llm.Architecture, Is.EqualTo("Qwen3ForCausalLM"));
        Assert.That(llm.Dimension, Is.EqualTo(64));

        g.CheckTokenEmbedAndLastTokenEmbed(llm, rows => Reference.Normalize(rows, g.H), g.H, "Qwen3ForCausalLM (model.* + lm_head) vs normalized golden");
    }

    [Test]
    public void Qwen3EmbeddingSentenceTransformersLayoutPoolsTheLastToken()
    {
        // Qwen3-Embedding folders: Qwen3Model weights + 1_Pooling (pooling_mode_lasttoken) + 2_Normalize.
        var g = DecoderGolden.Load("qwen3");
        using var f = Build(g, _ => { }, _ => { });
        File.WriteAllText(f.File("modules.json"),
            """[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"},{"idx":2,"name":"2","path":"2_Normalize","type":"sentence_transformers.models.Normalize"}]""");
        Directory.CreateDirectory(f.File("1_Pooling"));
        File.WriteAllText(f.File("1_Pooling/config.json"),
            """{"word_embedding_dimension":64,"pooling_mode_cls_token":false,"pooling_mode_mean_tokens":false,"pooling_mode_max_tokens":false,"pooling_mode_mean_sqrt_len_tokens":false,"pooling_mode_weightedmean_tokens":false,"pooling_mode_lasttoken":true,"include_prompt":true}""");
        using var llm = new Llm(f.Path, Cpu);
        Assert.That(llm.IsLateInteraction, Is.False);
        var max = DecoderGolden.CompareEmbed(llm.Encode(g.TokenPrompts, PoolingTask.Embed), r => Reference.Normalize(g.Last(r), g.H));
        TestContext.Out.WriteLine($"Qwen3Model + 1_Pooling lasttoken: embed vs normalized golden last token {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void TiedCausalLmWithoutLmHeadLoads()
    {
        // llama_rope_llama3 has tie_word_embeddings: true; LFM2 checkpoints are tied too.
        foreach (var (name, arch) in new[] { ("llama_rope_llama3", "LlamaForCausalLM"), ("lfm2", "Lfm2ForCausalLM") })
        {
            var g = DecoderGolden.Load(name);
            using var f = Build(g, c => Architecture(c, arch), _ => { }, prefix: "model.");
            using var llm = new Llm(f.Path, Cpu);
            var max = DecoderGolden.Compare(llm.Encode(g.TokenPrompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false }), g.Rows, g.H, out _);
            TestContext.Out.WriteLine($"{arch} (tied, no lm_head): max |diff| = {max:E2}");
            Assert.That(max, Is.LessThanOrEqualTo(1e-4f), arch);
        }
    }

    [Test]
    public void Qwen2WithZeroQkvBiasesIsLlama()
    {
        // Qwen2 = Llama + q/k/v biases (no q/k norm). With zero biases and the llama golden's weights, head_dim,
        // eps and RoPE, it must reproduce the llama golden (non-zero biases: the plain-reference test below).
        var g = DecoderGolden.Load("llama");
        using var f = Build(g, c =>
        {
            Architecture(c, "Qwen2Model");
            c["model_type"] = "qwen2";
            c.Remove("mlp_bias");
            c.Remove("attention_bias");
        }, t =>
        {
            for (var i = 0; i < 2; i++)
            {
                t[$"layers.{i}.self_attn.q_proj.bias"] = ([64], new float[64]);
                t[$"layers.{i}.self_attn.k_proj.bias"] = ([32], new float[32]);
                t[$"layers.{i}.self_attn.v_proj.bias"] = ([32], new float[32]);
            }
        });
        using var llm = new Llm(f.Path, Cpu);
        Assert.That(llm.Architecture, Is.EqualTo("Qwen2Model"));
        var max = DecoderGolden.Compare(llm.Encode(g.TokenPrompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false }), g.Rows, g.H, out _);
        TestContext.Out.WriteLine($"Qwen2Model (llama weights, zero q/k/v biases) vs llama golden: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        // The same folder without the biases is not a Qwen2 checkpoint.
        using var noBias = Build(g, c => { Architecture(c, "Qwen2Model"); c["model_type"] = "qwen2"; }, _ => { });
        Assert.That(LoadFails(noBias.Path).TensorName, Is.EqualTo("layers.0.self_attn.q_proj.bias"));
    }

    [Test]
    public void Qwen2WithNonZeroBiasesMatchesThePlainReference()
    {
        var llama = DecoderGolden.Load("llama");
        var qwen3 = DecoderGolden.Load("qwen3");
        var llamaShape = new ReferenceDecoder.Shape(64, 4, 2, 16, 2, 1e-5, 500000.0, QkNorm: false);
        // First the plain reference itself against transformers (llama, and qwen3 for the q/k norm path).
        var llamaWeights = Checkpoints.ReadAll(llama.Folder);
        var qwen3Weights = Checkpoints.ReadAll(qwen3.Folder);
        var refMax = 0f;
        for (var r = 0; r < 2; r++)
        {
            refMax = Math.Max(refMax, Reference.MaxAbsDiff(ReferenceDecoder.Forward(llamaWeights, llama.Prompts[r], llamaShape), llama.Rows(r)));
            refMax = Math.Max(refMax, Reference.MaxAbsDiff(
                ReferenceDecoder.Forward(qwen3Weights, qwen3.Prompts[r], new ReferenceDecoder.Shape(64, 4, 2, 32, 2, 1e-6, 1e6, QkNorm: true)), qwen3.Rows(r)));
        }
        Assert.That(refMax, Is.LessThanOrEqualTo(1e-4f), "the plain reference reproduces the llama and qwen3 goldens");

        var biases = new Dictionary<string, (long[] Shape, float[] Data)>();
        for (var i = 0; i < 2; i++)
        {
            biases[$"layers.{i}.self_attn.q_proj.bias"] = ([64], Reference.Gaussian(64, seed: 100 + i, scale: 0.3));
            biases[$"layers.{i}.self_attn.k_proj.bias"] = ([32], Reference.Gaussian(32, seed: 200 + i, scale: 0.3));
            biases[$"layers.{i}.self_attn.v_proj.bias"] = ([32], Reference.Gaussian(32, seed: 300 + i, scale: 0.3));
        }
        using var f = Build(llama, c => { Architecture(c, "Qwen2ForCausalLM"); c["model_type"] = "qwen2"; },
            t => { foreach (var (k, v) in biases) t["model." + k] = v; }, prefix: "model.");
        using var llm = new Llm(f.Path, Cpu);
        var withBiases = new Dictionary<string, (long[] Shape, float[] Data)>(llamaWeights);
        foreach (var (k, v) in biases) withBiases[k] = v;
        var outputs = llm.Encode(llama.TokenPrompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var max = DecoderGolden.Compare(outputs, r => ReferenceDecoder.Forward(withBiases, llama.Prompts[r], llamaShape), 64, out var n);
        var effect = DecoderGolden.Compare(outputs, llama.Rows, 64, out _);
        TestContext.Out.WriteLine($"plain reference vs goldens {refMax:E2}; Qwen2ForCausalLM with q/k/v biases vs plain reference {max:E2} over {n} tokens (bias effect vs llama golden {effect:E2})");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
        Assert.That(effect, Is.GreaterThan(1e-2f), "the biases change the output");
    }

    private const int ColDim = 16;

    private static TempFolder PyLateLfm2(string architecture, float[] w)
    {
        var g = DecoderGolden.Load("lfm2");
        var f = Build(g, c => Architecture(c, architecture), _ => { });
        File.WriteAllText(f.File("modules.json"),
            """[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Dense","type":"pylate.models.Dense.Dense"}]""");
        Directory.CreateDirectory(f.File("1_Dense"));
        File.WriteAllText(f.File("1_Dense/config.json"),
            $$"""{"in_features":64,"out_features":{{ColDim}},"bias":false,"activation_function":"torch.nn.modules.linear.Identity","use_residual":false}""");
        SafeTensorsWriter.WriteF32(f.File("1_Dense/model.safetensors"), new Dictionary<string, (long[], float[])> { ["linear.weight"] = ([ColDim, 64], w) });
        return f;
    }

    [TestCase("Lfm2Model")]
    [TestCase("ColBERTLfm2Model")]
    public void Lfm2ColBertInPyLateLayout(string architecture)
    {
        var g = DecoderGolden.Load("lfm2");
        var w = Reference.Gaussian(ColDim * 64, seed: 11, scale: 0.1);
        using var f = PyLateLfm2(architecture, w);
        using var llm = new Llm(f.Path, Cpu);
        Assert.That(llm.Architecture, Is.EqualTo(architecture));
        Assert.That(llm.Dimension, Is.EqualTo(ColDim));
        Assert.That(llm.IsLateInteraction, Is.True);

        g.CheckTokenEmbedAndLastTokenEmbed(llm, rows => Reference.Normalize(Reference.Project(rows, 64, w, ColDim), ColDim), ColDim,
            $"{architecture} + PyLate 1_Dense vs normalized projected golden");
    }

    [Test]
    public void ColBertLfm2WithoutDenseModuleFails()
    {
        var g = DecoderGolden.Load("lfm2");
        using var f = Build(g, c => Architecture(c, "ColBERTLfm2Model"), _ => { });
        Assert.That(LoadFails(f.Path).Message, Does.Contain("ColBERTLfm2Model").And.Contain("Dense"));
    }

    [Test]
    public void PlainDecoderWithAnLmHeadHasAnUnexpectedWeight()
    {
        var g = DecoderGolden.Load("qwen3");
        using var f = Build(g, _ => { }, t => t["lm_head.weight"] = ([1000, 64], new float[64000]));
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.EqualTo("lm_head.weight"));
        Assert.That(e.Message, Does.Contain("unexpected"));
    }

    [Test]
    public void CausalLmMissingOrExtraWeightsAreNamed()
    {
        var g = DecoderGolden.Load("qwen3");
        using (var f = Build(g, c => Architecture(c, "Qwen3ForCausalLM"), t => t.Remove("model.layers.1.self_attn.k_norm.weight"), prefix: "model."))
        {
            var e = LoadFails(f.Path);
            Assert.That(e.TensorName, Is.EqualTo("model.layers.1.self_attn.k_norm.weight"));
            Assert.That(e.Message, Does.Contain("missing"));
        }
        using (var f = Build(g, c => Architecture(c, "Qwen3ForCausalLM"), t => t["model.layers.2.mlp.up_proj.weight"] = ([128, 64], new float[128 * 64]), prefix: "model."))
            Assert.That(LoadFails(f.Path).TensorName, Is.EqualTo("model.layers.2.mlp.up_proj.weight"));
    }

    [Test]
    public void Lfm2ConvWeightsAreChecked()
    {
        var g = DecoderGolden.Load("lfm2");
        using (var f = Build(g, _ => { }, t => t.Remove("layers.2.conv.conv.weight")))
            Assert.That(LoadFails(f.Path).TensorName, Is.EqualTo("layers.2.conv.conv.weight"));
        using (var f = Build(g, _ => { }, t => t["layers.0.conv.conv.weight"] = ([64, 1, 4], new float[256])))
        {
            var e = LoadFails(f.Path);
            Assert.That(e.TensorName, Is.EqualTo("layers.0.conv.conv.weight"));
            Assert.That(e.Message, Does.Contain("[64, 1, 4]").And.Contain("[64, 1, 3]"));
        }
        // layer_types says attention where the checkpoint has a conv layer: the attention weights are missing.
        using (var f = Build(g, c => c["layer_types"] = new JsonArray("full_attention", "full_attention", "conv", "full_attention"), _ => { }))
            Assert.That(LoadFails(f.Path).TensorName, Does.StartWith("layers.0.self_attn."));
    }

    [TestCase("qwen3", "rope_parameters", """{"rope_type":"yarn","rope_theta":10000.0,"factor":4.0}""", "rope_parameters.rope_type")]
    [TestCase("llama_rope_llama3", "rope_parameters", """{"rope_type":"llama3","rope_theta":500000.0,"factor":8.0}""", "rope_parameters.low_freq_factor")]
    [TestCase("qwen3", "use_sliding_window", "true", "use_sliding_window")]
    [TestCase("qwen3", "layer_types", """["full_attention","sliding_attention"]""", "layer_types")]
    [TestCase("lfm2", "layer_types", """["conv","mamba","conv","full_attention"]""", "layer_types")]
    [TestCase("lfm2", "conv_L_cache", "0", "conv_L_cache")]
    [TestCase("llama", "num_key_value_heads", "3", "num_key_value_heads")]
    public void BadConfigFieldsAreNamed(string name, string field, string json, string expected)
    {
        var g = DecoderGolden.Load(name);
        using var f = new TempFolder();
        g.CopyTo(f, c => c[field] = JsonNode.Parse(json));
        var e = LoadFails(f.Path);
        TestContext.Out.WriteLine(e.Message);
        Assert.That(e.Message, Does.Contain(expected));
    }

    [Test]
    public void UnknownCausalLmListsTheSupportedArchitectures()
    {
        var g = DecoderGolden.Load("llama");
        using var f = new TempFolder();
        g.CopyTo(f, c => Architecture(c, "MistralForCausalLM"));
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("MistralForCausalLM").And.Contain("Qwen3ForCausalLM").And.Contain("LlamaForCausalLM")
            .And.Contain("Lfm2Model").And.Contain("ColBERTLfm2Model").And.Contain("Qwen2ForCausalLM"));
    }
}
