using TokenEmbed.Models;
using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models.ModernBert;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// ModernBertModel against transformers 5.17's last_hidden_state (../shared/fixtures/goldens/modernbert): global and
/// sliding layers, the bias-less pre-LN stack, GeGLU, per-layer-type RoPE, and a padded row whose sliding windows are
/// all padding (finite masks). Both config spellings (5.x and hub) describe the same model.
/// </summary>
public sealed class ModernBertTests
{
    internal static string Folder => TestPaths.Fixture("goldens", "modernbert");

    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    internal sealed record Golden(long[] Ids, long[] Mask, float[] Hidden, int B, int T, int H)
    {
        public int Length(int r) => (int)Enumerable.Range(0, T).Count(j => Mask[r * T + j] == 1);
        public float[] Rows(int r) => Reference.Rows(Hidden, T, H, r, Length(r));
        public Prompt PromptOf(int r) => Prompt.FromTokenIds(Reference.ValidIds(Ids, Mask, T, r));
    }

    internal static Golden ReadGolden()
    {
        using var golden = SafeTensorsFile.Open(Path.Combine(Folder, "golden.safetensors"));
        var (ids, _) = Reference.ReadInt64(golden, "input_ids");
        var (mask, _) = Reference.ReadInt64(golden, "attention_mask");
        var (hidden, shape) = Reference.ReadFloat32(golden, "last_hidden_state");
        return new Golden(ids, mask, hidden, (int)shape[0], (int)shape[1], (int)shape[2]);
    }

    /// <summary>A folder holding the golden weights with <paramref name="configFile"/> of the golden folder as config.json.</summary>
    internal static TempFolder FolderWithConfig(string configFile)
    {
        var f = new TempFolder().CopyFrom(Folder, "model.safetensors");
        File.Copy(Path.Combine(Folder, configFile), f.File("config.json"));
        return f;
    }

    [TestCase("config.json")]
    [TestCase("config_legacy.json")]
    public void BackboneMatchesTransformers(string configFile)
    {
        var config = ModernBertConfig.From(HfConfig.Load(Path.Combine(Folder, configFile)));
        Assert.That(config.LayerTypes, Is.EqualTo(new[] { ModernBertLayerType.Full, ModernBertLayerType.Sliding, ModernBertLayerType.Sliding, ModernBertLayerType.Full }));
        Assert.That((config.GlobalRopeTheta, config.LocalRopeTheta, config.HalfWindow), Is.EqualTo((160000.0, 10000.0, 4)));

        using var model = new ModernBertModel(config);
        var consumed = new HashSet<string>();
        using (var weights = WeightSet.OpenCheckpoint(Folder))
        {
            TokenEmbed.Models.Layers.WeightLoader.Load(model, weights, "", consumed);
            Assert.That(consumed, Is.EquivalentTo(weights.Names), "every checkpoint tensor is a model parameter");
        }
        Assert.That(consumed, Does.Not.Contain("layers.0.attn_norm.weight"));

        var g = ReadGolden();
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var output = model.forward(new ModelInput(tensor(g.Ids, [g.B, g.T]), tensor(g.Mask, [g.B, g.T]))).contiguous();
        var actual = output.data<float>().ToArray();
        Assert.That(actual.All(float.IsFinite), "padded positions stay finite too (finfo.min masks, not −inf)");

        var max = 0f;
        var compared = 0;
        for (var r = 0; r < g.B; r++)
        for (var j = 0; j < g.T; j++)
        {
            if (g.Mask[r * g.T + j] != 1) continue;
            var at = (r * g.T + j) * g.H;
            max = Math.Max(max, Reference.MaxAbsDiff(actual.AsSpan(at, g.H), g.Hidden.AsSpan(at, g.H)));
            compared++;
        }
        TestContext.Out.WriteLine($"modernbert golden ({configFile}): max |diff| = {max:E2} over {compared} valid positions");
        Assert.That(compared, Is.EqualTo(24 + 15));
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [TestCase("config.json")]
    [TestCase("config_legacy.json")]
    public void LlmTokenEmbedWithoutNormalizationIsTheLastHiddenState(string configFile)
    {
        using var f = FolderWithConfig(configFile);
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That(llm.Architecture, Is.EqualTo("ModernBertModel"));
        Assert.That(llm.Dimension, Is.EqualTo(64));
        Assert.That(llm.MaxModelLength, Is.EqualTo(128), "max_position_embeddings caps the length");
        Assert.That(llm.IsLateInteraction, Is.False);

        var g = ReadGolden();
        var prompts = Enumerable.Range(0, g.B).Select(g.PromptOf).ToArray();
        var outputs = llm.Encode(prompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var max = 0f;
        for (var r = 0; r < g.B; r++)
        {
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { g.Length(r), g.H }));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, g.Rows(r)));
        }
        TestContext.Out.WriteLine($"modernbert via Llm ({configFile}), batched with padding: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        // Default Embed pooling of a ModernBERT encoder without sentence-transformers pooling is CLS.
        var embed = llm.Encode(prompts, PoolingTask.Embed);
        var maxCls = 0f;
        for (var r = 0; r < g.B; r++)
        {
            var cls = Reference.Normalize(g.Rows(r).AsSpan(0, g.H).ToArray(), g.H);
            maxCls = Math.Max(maxCls, Reference.MaxAbsDiff(embed[r].Outputs.Data, cls));
        }
        TestContext.Out.WriteLine($"modernbert Embed (CLS, normalized): max |diff| = {maxCls:E2}");
        Assert.That(maxCls, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void MaskedLmCheckpointWithModelPrefixLoadsWithoutItsHead()
    {
        var tensors = Checkpoints.ReadAll(Folder).ToDictionary(kv => "model." + kv.Key, kv => kv.Value);
        tensors["head.dense.weight"] = ([64, 64], Reference.Gaussian(64 * 64, 1, 0.05));
        tensors["head.norm.weight"] = ([64], Enumerable.Repeat(1f, 64).ToArray());
        tensors["decoder.bias"] = ([1000], new float[1000]);
        using var f = new TempFolder();
        Checkpoints.WriteConfig(Folder, f.Path, "ModernBertForMaskedLM");
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);

        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That(llm.Architecture, Is.EqualTo("ModernBertForMaskedLM"));
        var g = ReadGolden();
        var out1 = llm.Encode(g.PromptOf(1), PoolingTask.TokenEmbed, new PoolingParams { Normalize = false })[0];
        var max = Reference.MaxAbsDiff(out1.Outputs.Data, g.Rows(1));
        TestContext.Out.WriteLine($"ModernBertForMaskedLM (model. prefix): max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void ColBertModernBertArchitectureNameNeedsItsDenseHead()
    {
        // vLLM's ColBERT override names carry a projection; without one the vectors would silently have the wrong size.
        // (PyLateModernBertTests loads the name over a folder that has its 1_Dense module.)
        using var f = new TempFolder().CopyFrom(Folder, "model.safetensors");
        Checkpoints.WriteConfig(Folder, f.Path, "ColBERTModernBertModel");
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;
        Assert.That(e.Message, Does.Contain("ColBERTModernBertModel").And.Contain("Dense"));
    }

    [Test]
    public void PromptsLongerThanMaxPositionEmbeddingsAreRejected()
    {
        using var llm = new Llm(Folder, new LlmOptions { Device = "cpu" });
        var ids = Enumerable.Repeat(5, 129).ToArray();
        Assert.Throws<PromptTooLongException>(() => llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed));
        var truncated = llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, new PoolingParams { TruncatePromptTokens = -1 })[0];
        Assert.That(truncated.Outputs.Shape, Is.EqualTo(new[] { 128, 64 }));
        Assert.That(truncated.Outputs.Data.All(float.IsFinite));
    }

    /// <summary>
    /// Half precision with long padding: a padded query whose whole sliding window is padding must not turn into NaN
    /// (finfo.min plus a score overflows to −inf in float16) and leak into valid rows in the next layer.
    /// </summary>
    [TestCase("float16", 2e-2)]
    [TestCase("bfloat16", 1.5e-1)]
    public void HalfPrecisionBatchWithLongPaddingStaysFiniteAndClose(string dtype, double tolerance)
    {
        var rng = new Random(11);
        int[] Ids(int n) => Enumerable.Range(0, n).Select(i => i == 0 ? 1 : i == n - 1 ? 2 : rng.Next(3, 1000)).ToArray();
        var prompts = new[] { Ids(100), Ids(5), Ids(37) };
        using var full = new Llm(Folder, new LlmOptions { Device = "cpu" });
        using var half = new Llm(Folder, new LlmOptions { Device = "cpu", DType = dtype });
        var p = new PoolingParams { Normalize = false };
        var max = 0f;
        foreach (var (ids, i) in prompts.Select((x, i) => (x, i)))
        {
            var expected = full.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, p)[0].Outputs.Data; // alone: no padding
            var actual = half.Encode(prompts.Select(Prompt.FromTokenIds).ToArray(), PoolingTask.TokenEmbed, p)[i].Outputs.Data; // batched
            Assert.That(actual.All(float.IsFinite), $"{dtype} prompt {i} has non-finite values");
            max = Math.Max(max, Reference.MaxAbsDiff(actual, expected));
        }
        TestContext.Out.WriteLine($"modernbert {dtype} batched (padding up to 95) vs float32 alone: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(tolerance));
    }
}
