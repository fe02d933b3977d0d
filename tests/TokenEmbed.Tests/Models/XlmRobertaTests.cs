using TokenEmbed.Models;
using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models.Bert;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// XLMRobertaModel (the BERT encoder with padding-aware positions) against transformers 5.17
/// (../shared/fixtures/goldens/xlm_roberta), directly and through <see cref="Llm"/> with token-id prompts, plus the
/// checkpoint layouts built on it: roberta.-prefixed masked-LM checkpoints, RobertaModel, HF_ColBERT over xlm-roberta.
/// </summary>
[NonParallelizable]
public sealed class XlmRobertaTests
{
    private const int Hidden = 64;
    private static string Folder => TestPaths.Fixture("goldens", "xlm_roberta");

    private long[] _ids = null!;
    private long[] _mask = null!;
    private long[] _shape = null!;
    private float[] _expected = null!;

    [OneTimeSetUp]
    public void Init()
    {
        TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);
        using var golden = SafeTensorsFile.Open(Path.Combine(Folder, "golden.safetensors"));
        (_ids, _shape) = Reference.ReadInt64(golden, "input_ids");
        (_mask, _) = Reference.ReadInt64(golden, "attention_mask");
        (_expected, _) = Reference.ReadFloat32(golden, "last_hidden_state");
    }

    private int B => (int)_shape[0];
    private int T => (int)_shape[1];
    private Prompt[] Prompts => Enumerable.Range(0, B).Select(r => Prompt.FromTokenIds(Reference.ValidIds(_ids, _mask, T, r))).ToArray();

    [Test]
    public void LastHiddenStateMatchesTransformers()
    {
        var config = BertConfig.FromRoberta(HfConfig.Load(Path.Combine(Folder, "config.json")), defaultVocab: 30522);
        using var model = new BertModel(config);
        using (var weights = WeightSet.OpenCheckpoint(Folder))
            TokenEmbed.Models.Layers.WeightLoader.Load(model, weights, "", new HashSet<string>());
        Assert.That(model.MaxPositions, Is.EqualTo(40 - 1 - 1), "max_position_embeddings − pad − 1");

        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var actual = model.Forward(new ModelInput(tensor(_ids, _shape), tensor(_mask, _shape))).contiguous().data<float>().ToArray();
        var (max, compared) = MaxDiffValid(actual);
        TestContext.Out.WriteLine($"xlm_roberta golden: max |diff| = {max:E2} over {compared} valid positions");
        Assert.That(compared, Is.EqualTo(24 + 15));
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        // Negative control: the same weights with BERT's arange positions are far off, so the test sees the positions.
        using var bert = new BertModel(config with { Positions = BertPositions.Absolute });
        using (var weights = WeightSet.OpenCheckpoint(Folder))
            TokenEmbed.Models.Layers.WeightLoader.Load(bert, weights, "", new HashSet<string>());
        var (wrong, _) = MaxDiffValid(bert.Forward(new ModelInput(tensor(_ids, _shape), tensor(_mask, _shape))).contiguous().data<float>().ToArray());
        TestContext.Out.WriteLine($"xlm_roberta with arange positions (control): max |diff| = {wrong:E2}");
        Assert.That(wrong, Is.GreaterThan(1e-2f));
    }

    [Test]
    public void PositionIdsStartAfterThePadIdAndPadsSitAtPad()
    {
        using var golden = SafeTensorsFile.Open(Path.Combine(Folder, "golden.safetensors"));
        var (expected, _) = Reference.ReadInt64(golden, "expected_position_ids");
        using var ids = tensor(_ids, _shape);
        using var mask = tensor(_mask, _shape);
        using var fromIds = BertEmbeddings.PaddingOffsetPositionIds(ids, null, pad: 1);
        using var withMask = BertEmbeddings.PaddingOffsetPositionIds(ids, mask, pad: 1);
        Assert.That(fromIds.data<long>().ToArray(), Is.EqualTo(expected), "transformers' create_position_ids_from_input_ids");
        Assert.That(withMask.data<long>().ToArray(), Is.EqualTo(expected));

        // The engine pads with 0 when the folder has no tokenizer: the mask still puts those positions at pad.
        var zeroPadded = _ids.Select((v, i) => _mask[i] == 1 ? v : 0L).ToArray();
        using var z = tensor(zeroPadded, _shape);
        using var zPos = BertEmbeddings.PaddingOffsetPositionIds(z, mask, pad: 1);
        Assert.That(zPos.data<long>().ToArray(), Is.EqualTo(expected));
    }

    [Test]
    public void ThroughLlmWithTokenIdPrompts()
    {
        using var llm = new Llm(Folder, new LlmOptions { Device = "cpu" });
        Assert.That(llm.Architecture, Is.EqualTo("XLMRobertaModel"));
        Assert.That(llm.MaxModelLength, Is.EqualTo(38));
        AssertTokenEmbedIsGolden(llm, "XLMRobertaModel via Llm");

        var embed = llm.Encode(Prompts, PoolingTask.Embed);
        var max = 0f;
        for (var r = 0; r < B; r++)
            max = Math.Max(max, Reference.MaxAbsDiff(embed[r].Outputs.Data, Reference.Normalize(Reference.Rows(_expected, T, Hidden, r, 1), Hidden)));
        TestContext.Out.WriteLine($"XLMRobertaModel Embed (CLS, normalized): max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        Assert.Throws<PromptTooLongException>(() => llm.Encode(Prompt.FromTokenIds(Enumerable.Repeat(5, 39).ToArray()), PoolingTask.TokenEmbed));
        Assert.That(llm.Encode(Prompt.FromTokenIds(Enumerable.Repeat(5, 38).ToArray()), PoolingTask.TokenEmbed)[0].Outputs.Shape, Is.EqualTo(new[] { 38, 64 }));
    }

    [TestCase("XLMRobertaForMaskedLM", "xlm-roberta")]
    [TestCase("RobertaForMaskedLM", "roberta")]
    [TestCase("RobertaModel", "roberta")]
    public void RobertaPrefixedCheckpointsLoad(string architecture, string modelType)
    {
        var tensors = Checkpoints.ReadAll(Folder);
        using var f = new TempFolder();
        var dict = tensors.ToDictionary(kv => "roberta." + kv.Key, kv => kv.Value);
        if (architecture.EndsWith("ForMaskedLM", StringComparison.Ordinal))
        {
            dict["lm_head.dense.weight"] = ([Hidden, Hidden], new float[Hidden * Hidden]);
            dict["lm_head.bias"] = ([1000], new float[1000]);
        }
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), dict);
        WriteConfig(f.Path, architecture, json => json["model_type"] = modelType);
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        AssertTokenEmbedIsGolden(llm, $"{architecture} (roberta.)");
    }

    [Test]
    public void HfColBertOverXlmRoberta()
    {
        const int dim = 16;
        var w = Reference.Gaussian(dim * Hidden, seed: 7, scale: 0.1);
        var dict = Checkpoints.ReadAll(Folder).ToDictionary(kv => "roberta." + kv.Key, kv => kv.Value);
        dict["linear.weight"] = ([dim, Hidden], w);
        using var f = new TempFolder();
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), dict);
        WriteConfig(f.Path, "HF_ColBERT");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That(llm.IsLateInteraction, Is.True);
        Assert.That(llm.Dimension, Is.EqualTo(dim));

        var outputs = llm.Encode(Prompts, PoolingTask.TokenEmbed);
        var max = 0f;
        for (var r = 0; r < B; r++)
        {
            var len = Prompts[r].TokenIds!.Count;
            var expected = Reference.Normalize(Reference.Project(Reference.Rows(_expected, T, Hidden, r, len), Hidden, w, dim), dim);
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { len, dim }));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, expected));
        }
        TestContext.Out.WriteLine($"HF_ColBERT (model_type xlm-roberta, roberta.*): max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void MissingRobertaWeightIsNamed()
    {
        var dict = Checkpoints.ReadAll(Folder).ToDictionary(kv => "roberta." + kv.Key, kv => kv.Value);
        dict.Remove("roberta.embeddings.position_embeddings.weight");
        using var f = new TempFolder();
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), dict);
        WriteConfig(f.Path, "XLMRobertaForMaskedLM");
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;
        Assert.That(e.TensorName, Is.EqualTo("roberta.embeddings.position_embeddings.weight"));
    }

    /// <summary>TokenEmbed without normalization is the last hidden state: compare every prompt token with the golden.</summary>
    private void AssertTokenEmbedIsGolden(Llm llm, string what)
    {
        var outputs = llm.Encode(Prompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var max = 0f;
        var compared = 0;
        for (var r = 0; r < B; r++)
        {
            var len = Prompts[r].TokenIds!.Count;
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { len, Hidden }));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, Reference.Rows(_expected, T, Hidden, r, len)));
            compared += len;
        }
        TestContext.Out.WriteLine($"{what}: TokenEmbed (raw) vs golden max |diff| = {max:E2} over {compared} tokens");
        Assert.That(compared, Is.EqualTo(24 + 15));
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    private (float Max, int Compared) MaxDiffValid(float[] actual) => Reference.MaxAbsDiffValid(actual, _expected, _mask, T, Hidden);

    internal static void WriteConfig(string target, string architecture, Action<System.Text.Json.Nodes.JsonObject>? edit = null)
    {
        Checkpoints.WriteConfig(Folder, target, architecture);
        if (edit == null) return;
        var path = Path.Combine(target, "config.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }
}
