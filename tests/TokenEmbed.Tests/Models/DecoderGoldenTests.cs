using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>A golden case of a decoder: the token ids of its two rows and transformers 5.17's last_hidden_state.</summary>
internal sealed class DecoderGolden
{
    private DecoderGolden(string folder)
    {
        Folder = folder;
        using var golden = SafeTensorsFile.Open(Path.Combine(folder, "golden.safetensors"));
        var (ids, shape) = Reference.ReadInt64(golden, "input_ids");
        var (mask, _) = Reference.ReadInt64(golden, "attention_mask");
        var (hidden, hShape) = Reference.ReadFloat32(golden, "last_hidden_state");
        (B, T, H) = ((int)shape[0], (int)shape[1], (int)hShape[2]);
        Prompts = Enumerable.Range(0, B).Select(r => Reference.ValidIds(ids, mask, T, r)).ToArray();
        Hidden = hidden;
    }

    public string Folder { get; }
    public int B { get; }
    public int T { get; }
    public int H { get; }
    public int[][] Prompts { get; }
    private float[] Hidden { get; }

    public static DecoderGolden Load(string name) => new(TestPaths.Fixture("goldens", name));

    /// <summary>The golden hidden states of row r's valid tokens, [len, H].</summary>
    public float[] Rows(int r) => Reference.Rows(Hidden, T, H, r, Prompts[r].Length);

    /// <summary>The golden hidden state of row r's last valid token, [H].</summary>
    public float[] Last(int r) => Rows(r).AsSpan((Prompts[r].Length - 1) * H, H).ToArray();

    public Prompt[] TokenPrompts => Prompts.Select(p => Prompt.FromTokenIds(p)).ToArray();

    /// <summary>Max |diff| of TokenEmbed outputs against <paramref name="expected"/>(row), checking shapes; counts compared tokens.</summary>
    public static float Compare(IReadOnlyList<PoolingRequestOutput> outputs, Func<int, float[]> expected, int width, out int tokens)
    {
        var max = 0f;
        tokens = 0;
        for (var r = 0; r < outputs.Count; r++)
        {
            var e = expected(r);
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { e.Length / width, width }), $"row {r} shape");
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, e));
            tokens += e.Length / width;
        }
        return max;
    }

    /// <summary>Max |diff| of Embed outputs (one vector per prompt) against <paramref name="expected"/>(row), checking shapes.</summary>
    public static float CompareEmbed(IReadOnlyList<PoolingRequestOutput> outputs, Func<int, float[]> expected)
    {
        var max = 0f;
        for (var r = 0; r < outputs.Count; r++)
        {
            var e = expected(r);
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { e.Length }), $"row {r} shape");
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, e));
        }
        return max;
    }

    /// <summary>
    /// Checks TokenEmbed and Embed (default parameters: normalized) against <paramref name="expected"/> applied to the golden
    /// hidden states of all valid tokens and of the last valid token ([n, H] → [n, width]); both within 1e-4.
    /// </summary>
    public void CheckTokenEmbedAndLastTokenEmbed(Llm llm, Func<float[], float[]> expected, int width, string label)
    {
        var maxTokens = Compare(llm.Encode(TokenPrompts, PoolingTask.TokenEmbed), r => expected(Rows(r)), width, out var n);
        var maxEmbed = CompareEmbed(llm.Encode(TokenPrompts, PoolingTask.Embed), r => expected(Last(r)));
        TestContext.Out.WriteLine($"{label}: token_embed max |diff| {maxTokens:E2} over {n} tokens; embed (last token) {maxEmbed:E2}");
        Assert.That(maxTokens, Is.LessThanOrEqualTo(1e-4f));
        Assert.That(maxEmbed, Is.LessThanOrEqualTo(1e-4f));
    }

    /// <summary>Copies the golden's weights and config.json into <paramref name="target"/>, editing the config.</summary>
    public void CopyTo(TempFolder target, Action<JsonObject> editConfig)
    {
        File.Copy(Path.Combine(Folder, "model.safetensors"), target.File("model.safetensors"), overwrite: true);
        var json = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "config.json")))!.AsObject();
        editConfig(json);
        File.WriteAllText(target.File("config.json"), json.ToJsonString());
    }
}

/// <summary>
/// Qwen3, Llama (default and Llama-3.1 RoPE) and LFM2 through <see cref="Llm"/> with token-id prompts against
/// transformers 5.17's last_hidden_state (goldens vendored from ../shared/fixtures/goldens).
/// </summary>
[NonParallelizable]
public sealed class DecoderGoldenTests
{
    private static readonly LlmOptions Cpu = new() { Device = "cpu" };

    [TestCase("qwen3", "Qwen3Model")]
    [TestCase("llama", "LlamaModel")]
    [TestCase("llama_rope_llama3", "LlamaModel")]
    [TestCase("lfm2", "Lfm2Model")]
    public void LastHiddenStatesMatchTransformers(string name, string architecture)
    {
        var g = DecoderGolden.Load(name);
        using var llm = new Llm(g.Folder, Cpu);
        Assert.That(llm.Architecture, Is.EqualTo(architecture));
        Assert.That(llm.Dimension, Is.EqualTo(g.H));
        Assert.That(llm.IsLateInteraction, Is.False);

        var outputs = llm.Encode(g.TokenPrompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var max = DecoderGolden.Compare(outputs, g.Rows, g.H, out var tokens);
        TestContext.Out.WriteLine($"{name} golden: max |diff| = {max:E2} over {tokens} valid positions");
        Assert.That(tokens, Is.EqualTo(24 + 15));
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [TestCase("qwen3")]
    [TestCase("llama")]
    [TestCase("llama_rope_llama3")]
    [TestCase("lfm2")]
    public void BatchedEqualsOneByOneAndPrefixesEqualTheirFullPrompt(string name)
    {
        var g = DecoderGolden.Load(name);
        using var llm = new Llm(g.Folder, Cpu);
        var a = g.Prompts[0];
        var b = g.Prompts[1];
        int[][] prompts = [a, b, a[..7], [a[0]], b[..11], a[3..20]];
        var noNorm = new PoolingParams { Normalize = false };
        var batched = llm.Encode(prompts.Select(p => Prompt.FromTokenIds(p)).ToArray(), PoolingTask.TokenEmbed, noNorm);

        var maxBatch = 0f;
        for (var i = 0; i < prompts.Length; i++)
        {
            var alone = llm.Encode(Prompt.FromTokenIds(prompts[i]), PoolingTask.TokenEmbed, noNorm)[0];
            Assert.That(batched[i].Outputs.Shape, Is.EqualTo(alone.Outputs.Shape));
            maxBatch = Math.Max(maxBatch, Reference.MaxAbsDiff(batched[i].Outputs.Data, alone.Outputs.Data));
        }

        // Causal attention and convolution: a prefix's token states are the full prompt's first states.
        var full = batched[0].Outputs.Data;
        var prefix = batched[2].Outputs.Data;
        var maxPrefix = Reference.MaxAbsDiff(prefix, full.AsSpan(0, prefix.Length));
        // Embed pools the last token: for the prefix prompt that is position 6 of the full prompt.
        var embed = llm.Encode(Prompt.FromTokenIds(prompts[2]), PoolingTask.Embed, noNorm)[0].Outputs.Data;
        var maxEmbed = Reference.MaxAbsDiff(embed, full.AsSpan(6 * g.H, g.H));

        TestContext.Out.WriteLine($"{name}: batched vs one-by-one max |diff| = {maxBatch:E2}; prefix vs full {maxPrefix:E2}; Embed = last token {maxEmbed:E2}");
        Assert.That(maxBatch, Is.LessThanOrEqualTo(1e-5f));
        Assert.That(maxPrefix, Is.LessThanOrEqualTo(1e-5f));
        Assert.That(maxEmbed, Is.LessThanOrEqualTo(1e-5f));
    }

    [TestCase("qwen3")]
    [TestCase("lfm2")]
    public void BFloat16RunsCloseToTheFloat32Golden(string name)
    {
        // Half precision (what CUDA users get by default) on CPU: finite, and within bf16 rounding of the golden.
        var g = DecoderGolden.Load(name);
        using var llm = new Llm(g.Folder, new LlmOptions { Device = "cpu", DType = "bfloat16" });
        var max = DecoderGolden.Compare(llm.Encode(g.TokenPrompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false }), g.Rows, g.H, out _);
        TestContext.Out.WriteLine($"{name} bfloat16 vs float32 golden: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(0.25f));
    }

    [Test]
    public void OlderRopeSpellingsLoad()
    {
        // Hub configs written before transformers 5: top-level rope_theta and rope_scaling (with "rope_type" or "type").
        var scaled = DecoderGolden.Load("llama_rope_llama3");
        var plain = DecoderGolden.Load("llama");
        using var oldScaled = new TempFolder();
        using var oldScaledType = new TempFolder();
        using var oldPlain = new TempFolder();
        using var noTheta = new TempFolder();
        scaled.CopyTo(oldScaled, c =>
        {
            c.Remove("rope_parameters");
            c["rope_theta"] = 500000.0;
            c["rope_scaling"] = JsonNode.Parse("""{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}""");
        });
        scaled.CopyTo(oldScaledType, c =>
        {
            c.Remove("rope_parameters");
            c["rope_theta"] = 500000.0;
            c["rope_scaling"] = JsonNode.Parse("""{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"type":"llama3"}""");
        });
        plain.CopyTo(oldPlain, c =>
        {
            c.Remove("rope_parameters");
            c["rope_theta"] = 500000.0;
            c["rope_scaling"] = null;
        });
        plain.CopyTo(noTheta, c => c.Remove("rope_parameters")); // LlamaConfig's default theta 10000: must NOT match

        foreach (var (folder, g, label) in new[] { (oldScaled, scaled, "rope_scaling.rope_type llama3"), (oldScaledType, scaled, "rope_scaling.type llama3"), (oldPlain, plain, "rope_theta only") })
        {
            using var llm = new Llm(folder.Path, Cpu);
            var max = DecoderGolden.Compare(llm.Encode(g.TokenPrompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false }), g.Rows, g.H, out _);
            TestContext.Out.WriteLine($"old spelling ({label}): max |diff| = {max:E2}");
            Assert.That(max, Is.LessThanOrEqualTo(1e-4f), label);
        }
        using (var llm = new Llm(noTheta.Path, Cpu))
        {
            var max = DecoderGolden.Compare(llm.Encode(plain.TokenPrompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false }), plain.Rows, plain.H, out _);
            TestContext.Out.WriteLine($"no rope settings (theta 10000 instead of 500000): max |diff| = {max:E2} (must be large)");
            Assert.That(max, Is.GreaterThan(1e-3f));
        }
    }

    [Test]
    public void Llama3InverseFrequenciesEqualTransformersBuffer()
    {
        // meta.json extras.post_save.hf_inv_freq of the llama_rope_llama3 case (SPEC.md §6).
        float[] hf = [1.0f, 0.193922758102417f, 0.03760603070259094f, 0.00729266507551074f, 0.0005248460220173001f, 3.428102354519069e-05f, 6.647869668086059e-06f, 1.289173155782919e-06f];
        TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);
        var inv = TokenEmbed.Models.Layers.Rotary.Llama3InverseFrequencies(16, 500000.0, 8.0, 1.0, 4.0, 8192);
        for (var i = 0; i < hf.Length; i++)
            Assert.That(inv[i], Is.EqualTo(hf[i]), $"inv_freq[{i}] (bit-exact)");
        Assert.That(inv[4], Is.Not.EqualTo(Rotary16()[4] / 8f).Within(1e-9), "index 4 is in the smoothed band");

        static float[] Rotary16() => TokenEmbed.Models.Layers.Rotary.DefaultInverseFrequencies(16, 500000.0);
    }
}
