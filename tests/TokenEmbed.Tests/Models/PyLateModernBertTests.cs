using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// The PyLate / sentence-transformers ColBERT layout real GTE-ModernColBERT-v1 folders use: <c>architectures:
/// ["ModernBertModel"]</c>, unprefixed weights, and the projection as Dense modules listed in modules.json. Built here
/// around the ModernBERT golden weights with seeded Dense heads; the expected token vectors are computed in plain C#
/// from transformers' last_hidden_state.
/// </summary>
public sealed class PyLateModernBertTests
{
    private const int Hidden = 64;

    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    /// <summary>One Dense module: its config and the weights as stored.</summary>
    internal sealed record Dense(int In, int Out, bool Bias, string Activation, string WeightKey, string ModuleType, int Seed)
    {
        public float[] W { get; } = Reference.Gaussian(Out * In, Seed, 0.1);
        public float[] B { get; } = Reference.Gaussian(Out, Seed + 1000, 0.05);

        public float[] Apply(float[] x)
        {
            var y = Reference.Project(x, In, W, Out);
            for (var i = 0; i < y.Length; i++)
            {
                var v = Bias ? y[i] + B[i % Out] : y[i];
                y[i] = Activation.EndsWith("Tanh", StringComparison.Ordinal) ? (float)Math.Tanh(v) : v;
            }
            return y;
        }
    }

    private const string Identity = "torch.nn.modules.linear.Identity";
    private const string Tanh = "torch.nn.modules.activation.Tanh";
    private const string PyLateDense = "pylate.models.Dense.Dense";
    private const string StDense = "sentence_transformers.models.Dense";

    /// <summary>A folder with the golden ModernBERT (config.json says ModernBertModel unless told) and the Dense chain.</summary>
    internal static TempFolder BuildFolder(IReadOnlyList<Dense> chain, string? architecture = null)
    {
        var src = ModernBertTests.Folder;
        var f = new TempFolder().CopyFrom(src, "config.json", "model.safetensors");
        if (architecture != null) Checkpoints.WriteConfig(src, f.Path, architecture);
        var modules = new List<string> { """{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"}""" };
        for (var i = 0; i < chain.Count; i++)
        {
            var d = chain[i];
            var dir = $"{i + 1}_Dense";
            modules.Add($$"""{"idx":{{i + 1}},"name":"{{i + 1}}","path":"{{dir}}","type":"{{d.ModuleType}}"}""");
            Directory.CreateDirectory(f.File(dir));
            File.WriteAllText(f.File($"{dir}/config.json"),
                $$"""{"in_features":{{d.In}},"out_features":{{d.Out}},"bias":{{(d.Bias ? "true" : "false")}},"activation_function":"{{d.Activation}}"}""");
            var tensors = new Dictionary<string, (long[], float[])> { [d.WeightKey] = ([d.Out, d.In], d.W) };
            if (d.Bias) tensors[d.WeightKey[..^"weight".Length] + "bias"] = ([d.Out], d.B);
            SafeTensorsWriter.WriteF32(f.File($"{dir}/model.safetensors"), tensors);
        }
        File.WriteAllText(f.File("modules.json"), "[" + string.Join(",", modules) + "]");
        return f;
    }

    private static readonly Dense[][] Chains =
    [
        [new Dense(Hidden, 32, false, Identity, "linear.weight", PyLateDense, 7)],
        [new Dense(Hidden, 24, true, Tanh, "weight", StDense, 8)],
        [new Dense(Hidden, 48, true, Tanh, "dense.weight", PyLateDense, 9), new Dense(48, 16, false, Identity, "linear.weight", PyLateDense, 10)],
    ];

    private static readonly string[] ChainNames = ["Dense identity, no bias", "Dense with bias and Tanh ('weight')", "two Dense modules"];

    [TestCase(0, null)]
    [TestCase(1, null)]
    [TestCase(2, null)]
    [TestCase(0, 8)]
    public void TokenEmbedIsTheNormalizedDenseChainOfTheHiddenStates(int chainIndex, int? dimensions)
    {
        var chain = Chains[chainIndex];
        using var f = BuildFolder(chain);
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var outF = chain[^1].Out;
        Assert.That(llm.Architecture, Is.EqualTo("ModernBertModel"), "no architecture override is needed");
        Assert.That(llm.Dimension, Is.EqualTo(outF));
        Assert.That(llm.IsLateInteraction, Is.True);

        var g = ModernBertTests.ReadGolden();
        var prompts = Enumerable.Range(0, g.B).Select(g.PromptOf).ToArray();
        var outputs = llm.Encode(prompts, PoolingTask.TokenEmbed, new PoolingParams { Dimensions = dimensions });
        var d = dimensions ?? outF;
        var max = 0f;
        for (var r = 0; r < g.B; r++)
        {
            var x = g.Rows(r);
            foreach (var layer in chain) x = layer.Apply(x);
            var len = g.Length(r);
            var cut = new float[len * d];
            for (var i = 0; i < len; i++) Array.Copy(x, i * outF, cut, i * d, d);
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { len, d }));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, Reference.Normalize(cut, d)));
        }
        TestContext.Out.WriteLine($"PyLate ModernBERT, {ChainNames[chainIndex]}, dims {d}: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void ColBertModernBertArchitectureLoadsTheSameFolder()
    {
        using var plain = BuildFolder(Chains[0]);
        using var overridden = BuildFolder(Chains[0], "ColBERTModernBertModel");
        using var a = new Llm(plain.Path, new LlmOptions { Device = "cpu" });
        using var b = new Llm(overridden.Path, new LlmOptions { Device = "cpu" });
        Assert.That(b.Architecture, Is.EqualTo("ColBERTModernBertModel"));
        Assert.That(b.IsLateInteraction, Is.True);
        var g = ModernBertTests.ReadGolden();
        var pa = a.Encode(g.PromptOf(1), PoolingTask.TokenEmbed)[0].Outputs;
        var pb = b.Encode(g.PromptOf(1), PoolingTask.TokenEmbed)[0].Outputs;
        Assert.That(pb.Shape, Is.EqualTo(pa.Shape));
        Assert.That(pb.Data, Is.EqualTo(pa.Data));
    }

    private const string PyLateSettings = """
        {
          "__version__": {"sentence_transformers": "4.0.2", "transformers": "4.48.2", "pytorch": "2.5.1", "pylate": "1.1.7"},
          "prompts": {"query": "search_query: "},
          "default_prompt_name": null,
          "similarity_fn_name": "MaxSim",
          "query_prefix": "[Q] ",
          "document_prefix": "[D] ",
          "query_length": 32,
          "document_length": 300,
          "attend_to_expansion_tokens": false,
          "skiplist_words": ["!", "\"", "#", ","],
          "do_query_expansion": true
        }
        """;

    [Test]
    public void PyLateSettingsAreLoadedAndLeaveEncodeUnchanged()
    {
        using var without = BuildFolder(Chains[0]);
        using var with = BuildFolder(Chains[0]);
        File.WriteAllText(with.File(PyLateConfig.FileName), PyLateSettings);

        using (var model = PoolingModel.Load(with.Path, new LlmOptions { Device = "cpu" }))
        {
            var s = model.Folder.PyLate!;
            Assert.That(s.FilePath, Does.EndWith(PyLateConfig.FileName));
            Assert.That((s.QueryPrefix, s.DocumentPrefix, s.QueryLength, s.DocumentLength), Is.EqualTo(("[Q] ", "[D] ", (int?)32, (int?)300)));
            Assert.That((s.DoQueryExpansion, s.AttendToExpansionTokens), Is.EqualTo(((bool?)true, (bool?)false)));
            Assert.That(s.SkiplistWords, Is.EqualTo(new[] { "!", "\"", "#", "," }));
            Assert.That(s.Prompts, Is.EquivalentTo(new Dictionary<string, string> { ["query"] = "search_query: " }));
            Assert.That((s.DefaultPromptName, s.SimilarityFnName), Is.EqualTo(((string?)null, "MaxSim")));
        }
        using (var model = PoolingModel.Load(without.Path, new LlmOptions { Device = "cpu" }))
            Assert.That(model.Folder.PyLate, Is.Null);

        // vLLM behaviour: no markers, no [MASK] expansion, no skiplist — the settings change nothing in Encode.
        using var a = new Llm(without.Path, new LlmOptions { Device = "cpu" });
        using var b = new Llm(with.Path, new LlmOptions { Device = "cpu" });
        var g = ModernBertTests.ReadGolden();
        var prompts = Enumerable.Range(0, g.B).Select(g.PromptOf).ToArray();
        foreach (var task in new[] { PoolingTask.TokenEmbed, PoolingTask.Embed })
        {
            var oa = a.Encode(prompts, task);
            var ob = b.Encode(prompts, task);
            for (var r = 0; r < g.B; r++)
            {
                Assert.That(ob[r].PromptTokenIds, Is.EqualTo(oa[r].PromptTokenIds));
                Assert.That(ob[r].Outputs.Shape, Is.EqualTo(oa[r].Outputs.Shape), $"{task} row {r}");
                Assert.That(ob[r].Outputs.Data, Is.EqualTo(oa[r].Outputs.Data), $"{task} row {r}");
            }
        }
    }

    [TestCase("""{"query_length": "32"}""", "query_length")]
    [TestCase("""{"document_length": 0}""", "document_length")]
    [TestCase("""{"do_query_expansion": "yes"}""", "do_query_expansion")]
    [TestCase("""{"skiplist_words": "!,."}""", "skiplist_words")]
    [TestCase("""{"skiplist_words": ["!", 3]}""", "skiplist_words")]
    [TestCase("""{"query_prefix": 1}""", "query_prefix")]
    [TestCase("""{"prompts": {"query": 5}}""", "prompts")]
    [TestCase("""{"query_length": 32,""", null)]
    public void MalformedPyLateSettingsNameTheFileAndField(string json, string? field)
    {
        using var f = BuildFolder(Chains[0]);
        File.WriteAllText(f.File(PyLateConfig.FileName), json);
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;
        Assert.That(e.FilePath, Does.EndWith(PyLateConfig.FileName));
        Assert.That(e.Message, Does.Contain(PyLateConfig.FileName));
        if (field != null) Assert.That(e.Message, Does.Contain($"'{field}'"));
    }
}
