using TokenEmbed.Models;
using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models.XlmRoberta;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// ColBERTJinaRobertaModel (jina-colbert-v2's architecture in vLLM) on tiny random checkpoints written in the Jina
/// layout, against <see cref="JinaReference"/>, an independent plain-C# forward of the upstream math.
/// </summary>
[NonParallelizable]
public sealed class JinaRobertaTests
{
    private const int Hidden = 32, Layers = 2, Heads = 4, Inter = 64, Vocab = 50, Dim = 8, MaxPos = 20;
    private const double Base = 20000.0, Eps = 1e-5;

    /// <summary>Two prompts of different lengths (12 and 7), so the batch is padded; id 1 (pad) inside one on purpose.</summary>
    private static readonly int[][] Ids =
    [
        [0, 17, 4, 33, 1, 25, 9, 48, 12, 30, 6, 2],
        [0, 41, 8, 19, 27, 5, 2],
    ];

    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    /// <summary>A seeded checkpoint: N(0, 0.2²) matrices, LayerNorm weights 1 + N(0, 0.1²), biases N(0, 0.05²).</summary>
    private static Dictionary<string, (long[] Shape, float[] Data)> RandomCheckpoint(string prefix, bool withHead = true)
    {
        var seed = 100;
        var d = new Dictionary<string, (long[], float[])>();
        void Add(string name, long[] shape, double scale, double offset = 0)
        {
            var n = (int)shape.Aggregate(1L, (a, b) => a * b);
            d[prefix + name] = (shape, Reference.Gaussian(n, seed++, scale).Select(v => (float)(v + offset)).ToArray());
        }
        Add("embeddings.word_embeddings.weight", [Vocab, Hidden], 0.5);
        Add("embeddings.token_type_embeddings.weight", [1, Hidden], 0.5);
        Add("emb_ln.weight", [Hidden], 0.1, 1);
        Add("emb_ln.bias", [Hidden], 0.05);
        for (var l = 0; l < Layers; l++)
        {
            var p = $"encoder.layers.{l}.";
            Add(p + "mixer.Wqkv.weight", [3 * Hidden, Hidden], 0.2);
            Add(p + "mixer.Wqkv.bias", [3 * Hidden], 0.05);
            Add(p + "mixer.out_proj.weight", [Hidden, Hidden], 0.2);
            Add(p + "mixer.out_proj.bias", [Hidden], 0.05);
            Add(p + "norm1.weight", [Hidden], 0.1, 1);
            Add(p + "norm1.bias", [Hidden], 0.05);
            Add(p + "mlp.fc1.weight", [Inter, Hidden], 0.2);
            Add(p + "mlp.fc1.bias", [Inter], 0.05);
            Add(p + "mlp.fc2.weight", [Hidden, Inter], 0.2);
            Add(p + "mlp.fc2.bias", [Hidden], 0.05);
            Add(p + "norm2.weight", [Hidden], 0.1, 1);
            Add(p + "norm2.bias", [Hidden], 0.05);
        }
        Add("pooler.dense.weight", [Hidden, Hidden], 0.2);
        Add("pooler.dense.bias", [Hidden], 0.05);
        if (withHead)
        {
            var saved = prefix;
            prefix = "";
            Add("linear.weight", [Dim, Hidden], 0.2);
            prefix = saved;
        }
        return d;
    }

    private static JsonObject Config(string architecture, int? rotaryDim = null, string act = "gelu")
    {
        var c = new JsonObject
        {
            ["architectures"] = new JsonArray(architecture),
            ["model_type"] = "xlm-roberta",
            ["vocab_size"] = Vocab, ["hidden_size"] = Hidden, ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads,
            ["intermediate_size"] = Inter, ["hidden_act"] = act, ["max_position_embeddings"] = MaxPos, ["type_vocab_size"] = 1,
            ["layer_norm_eps"] = Eps, ["pad_token_id"] = 1, ["bos_token_id"] = 0, ["eos_token_id"] = 2,
            ["position_embedding_type"] = "rotary", ["rotary_emb_base"] = Base, ["use_flash_attn"] = true,
        };
        if (rotaryDim is { } rd) c["rotary_emb_dim"] = rd;
        return c;
    }

    private static TempFolder Folder(Dictionary<string, (long[] Shape, float[] Data)> weights, JsonObject config)
    {
        var f = new TempFolder();
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), weights);
        File.WriteAllText(f.File("config.json"), config.ToJsonString());
        return f;
    }

    private static JinaReference Ref(Dictionary<string, (long[] Shape, float[] Data)> w, string prefix, int rotaryDim = Hidden / Heads, bool tanh = false) =>
        new(w, prefix, Hidden, Layers, Heads, Inter, Eps, Base, rotaryDim, tanh);

    [Test]
    public void ReferenceErfIsAccurate()
    {
        Assert.That(JinaReference.Erf(0.5), Is.EqualTo(0.5204998778130465).Within(1e-12));
        Assert.That(JinaReference.Erf(-1.7), Is.EqualTo(-0.9837904585907746).Within(1e-12));
        Assert.That(JinaReference.Erf(3.5), Is.EqualTo(0.9999992569016276).Within(1e-12));
    }

    [TestCase(null, "gelu")]
    [TestCase(4, "gelu")]
    [TestCase(null, "gelu_new")]
    public void BackboneMatchesTheIndependentReference(int? rotaryDim, string act)
    {
        var w = RandomCheckpoint("");
        using var f = Folder(w, Config("ColBERTJinaRobertaModel", rotaryDim, act));
        var cfg = JinaRobertaConfig.From(HfConfig.Load(f.File("config.json")));
        using var model = new JinaRobertaModel(cfg);
        using (var weights = WeightSet.OpenCheckpoint(f.Path))
            TokenEmbed.Models.Layers.WeightLoader.Load(model, weights, "", new HashSet<string>());
        Assert.That(model.MaxPositions, Is.EqualTo(MaxPos - 1 - 1));

        var t = Ids.Max(r => r.Length);
        var ids = new long[Ids.Length * t];
        var mask = new long[Ids.Length * t];
        for (var r = 0; r < Ids.Length; r++)
        for (var j = 0; j < t; j++)
        {
            ids[r * t + j] = j < Ids[r].Length ? Ids[r][j] : 1;
            mask[r * t + j] = j < Ids[r].Length ? 1 : 0;
        }
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var actual = model.Forward(new ModelInput(tensor(ids, [Ids.Length, t]), tensor(mask, [Ids.Length, t]))).contiguous().data<float>().ToArray();

        var reference = Ref(w, "", rotaryDim ?? Hidden / Heads, act == "gelu_new");
        var max = 0.0;
        var compared = 0;
        for (var r = 0; r < Ids.Length; r++)
        {
            var expected = reference.Forward(Ids[r]);
            for (var i = 0; i < Ids[r].Length; i++)
            for (var d = 0; d < Hidden; d++)
            {
                max = Math.Max(max, Math.Abs(actual[(r * t + i) * Hidden + d] - expected[i][d]));
                compared++;
            }
        }
        TestContext.Out.WriteLine($"Jina backbone (rotary_dim {rotaryDim ?? Hidden / Heads}, {act}) vs plain-C# reference: max |diff| = {max:E2} over {compared} values");
        Assert.That(compared, Is.EqualTo((12 + 7) * Hidden));
        Assert.That(max, Is.LessThanOrEqualTo(1e-4));

        // Control: the same reference with rotary base 10000 instead of 20000 is visibly different, so positions are tested.
        var other = new JinaReference(w, "", Hidden, Layers, Heads, Inter, Eps, 10000.0, rotaryDim ?? Hidden / Heads, act == "gelu_new").Forward(Ids[0]);
        var control = Enumerable.Range(0, Ids[0].Length).SelectMany(i => Enumerable.Range(0, Hidden).Select(d => Math.Abs(actual[i * Hidden + d] - other[i][d]))).Max();
        TestContext.Out.WriteLine($"control (base 10000): max |diff| = {control:E2}");
        Assert.That(control, Is.GreaterThan(1e-3));
    }

    [TestCase("ColBERTJinaRobertaModel", "")]
    [TestCase("ColBERTJinaRobertaModel", "roberta.")]
    [TestCase("HF_ColBERT", "roberta.")]
    public void TokenEmbedIsTheNormalizedProjectionOfTheReference(string architecture, string prefix)
    {
        var w = RandomCheckpoint(prefix);
        using var f = Folder(w, Config(architecture));
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That(llm.IsLateInteraction, Is.True);
        Assert.That(llm.Dimension, Is.EqualTo(Dim));
        Assert.That(llm.MaxModelLength, Is.EqualTo(MaxPos - 2));

        var outputs = llm.Encode(Ids.Select(Prompt.FromTokenIds).ToArray(), PoolingTask.TokenEmbed);
        var reference = Ref(w, prefix);
        var max = 0f;
        for (var r = 0; r < Ids.Length; r++)
        {
            var h = reference.Forward(Ids[r]).SelectMany(row => row.Select(v => (float)v)).ToArray();
            var expected = Reference.Normalize(Reference.Project(h, Hidden, w["linear.weight"].Data, Dim), Dim);
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { Ids[r].Length, Dim }));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, expected));
        }
        TestContext.Out.WriteLine($"{architecture} ({(prefix == "" ? "unprefixed" : prefix)}) TokenEmbed vs reference: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void RotaryXlmRobertaModelWithoutHeadGivesTheHiddenStates()
    {
        var w = RandomCheckpoint("", withHead: false);
        using var f = Folder(w, Config("XLMRobertaModel"));
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var outputs = llm.Encode(Ids.Select(Prompt.FromTokenIds).ToArray(), PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var reference = Ref(w, "");
        var max = 0f;
        for (var r = 0; r < Ids.Length; r++)
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, reference.Forward(Ids[r]).SelectMany(row => row.Select(v => (float)v)).ToArray()));
        TestContext.Out.WriteLine($"XLMRobertaModel with rotary config (Jina backbone) raw TokenEmbed vs reference: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    private static ModelLoadException LoadFails(TempFolder f) =>
        Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;

    [TestCase("")]
    [TestCase("roberta.")]
    public void MissingWqkvIsNamed(string prefix)
    {
        var w = RandomCheckpoint(prefix);
        var name = prefix + "encoder.layers.1.mixer.Wqkv.weight";
        w.Remove(name);
        using var f = Folder(w, Config("ColBERTJinaRobertaModel"));
        var e = LoadFails(f);
        Assert.That(e.TensorName, Is.EqualTo(name));
        Assert.That(e.Message, Does.Contain(name).And.Contain("missing"));
    }

    [Test]
    public void MisShapedWqkvIsNamedWithBothShapes()
    {
        var w = RandomCheckpoint("");
        w["encoder.layers.0.mixer.Wqkv.weight"] = ([2 * Hidden, Hidden], new float[2 * Hidden * Hidden]);
        using var f = Folder(w, Config("ColBERTJinaRobertaModel"));
        var e = LoadFails(f);
        Assert.That(e.TensorName, Is.EqualTo("encoder.layers.0.mixer.Wqkv.weight"));
        Assert.That(e.Message, Does.Contain("[64, 32]").And.Contain("[96, 32]"));
    }

    [Test]
    public void UnexpectedLayerAndMissingProjectionAreNamed()
    {
        var w = RandomCheckpoint("");
        w["encoder.layers.2.norm1.weight"] = ([Hidden], new float[Hidden]);
        using (var f = Folder(w, Config("ColBERTJinaRobertaModel")))
            Assert.That(LoadFails(f).TensorName, Is.EqualTo("encoder.layers.2.norm1.weight"));

        var noHead = RandomCheckpoint("", withHead: false);
        using (var f = Folder(noHead, Config("ColBERTJinaRobertaModel")))
            Assert.That(LoadFails(f).TensorName, Is.EqualTo("linear.weight"));

        // An absolute-position XLM-R checkpoint is not a Jina one: emb_ln is missing.
        var bert = Checkpoints.ReadAll(TestPaths.Fixture("goldens", "xlm_roberta"));
        using (var f = new TempFolder())
        {
            bert["linear.weight"] = ([Dim, 64], new float[Dim * 64]);
            SafeTensorsWriter.WriteF32(f.File("model.safetensors"), bert);
            var c = Config("ColBERTJinaRobertaModel");
            c["hidden_size"] = 64;
            c["intermediate_size"] = 128;
            c["vocab_size"] = 1000;
            c["max_position_embeddings"] = 40;
            File.WriteAllText(f.File("config.json"), c.ToJsonString());
            Assert.That(LoadFails(f).TensorName, Is.EqualTo("emb_ln.weight"));
        }
    }

    [TestCase("rotary_emb_interleaved", "true")]
    [TestCase("rotary_emb_scale_base", "512")]
    [TestCase("rotary_emb_dim", "10")]
    [TestCase("rotary_emb_dim", "3")]
    [TestCase("rotary_emb_fraction", "0.5")]
    [TestCase("rotary_emb_base", "\"big\"")]
    [TestCase("position_embedding_type", "\"absolute\"")]
    [TestCase("hidden_act", "\"relu\"")]
    public void UnsupportedConfigFieldsAreNamed(string field, string json)
    {
        var c = Config("ColBERTJinaRobertaModel");
        c[field] = JsonNode.Parse(json);
        using var f = Folder(RandomCheckpoint(""), c);
        var e = LoadFails(f);
        Assert.That(e.Message, Does.Contain(field));
    }
}
