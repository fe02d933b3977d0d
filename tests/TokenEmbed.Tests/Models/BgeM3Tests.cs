using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// BGE-M3's multi-vector output as vLLM's BgeM3EmbeddingModel computes it: TokenEmbed = normalize(colbert_linear(h))
/// with the BOS vector dropped; Embed = normalized CLS of the backbone. Built on the xlm_roberta golden, so h is
/// transformers' last_hidden_state.
/// </summary>
[NonParallelizable]
public sealed class BgeM3Tests
{
    private const int Hidden = 64;
    private static string Golden => TestPaths.Fixture("goldens", "xlm_roberta");

    private long[] _ids = null!;
    private long[] _mask = null!;
    private int _t;
    private float[] _hidden = null!;
    private float[] _w = null!;
    private float[] _b = null!;

    [OneTimeSetUp]
    public void Init()
    {
        using var golden = SafeTensorsFile.Open(Path.Combine(Golden, "golden.safetensors"));
        long[] shape;
        (_ids, shape) = Reference.ReadInt64(golden, "input_ids");
        (_mask, _) = Reference.ReadInt64(golden, "attention_mask");
        (_hidden, _) = Reference.ReadFloat32(golden, "last_hidden_state");
        _t = (int)shape[1];
        _w = Reference.Gaussian(Hidden * Hidden, seed: 11, scale: 0.1);
        _b = Reference.Gaussian(Hidden, seed: 12, scale: 0.1);
    }

    private Prompt[] Prompts => Enumerable.Range(0, 2).Select(r => Prompt.FromTokenIds(Reference.ValidIds(_ids, _mask, _t, r))).ToArray();

    /// <summary>normalize(W·h + b) for tokens <paramref name="from"/>.. of row r, with the first <paramref name="dim"/> rows of W.</summary>
    private float[] Expected(int r, int from, int dim = Hidden)
    {
        var len = Prompts[r].TokenIds!.Count;
        var rows = Reference.Rows(_hidden, _t, Hidden, r, len).AsSpan(from * Hidden).ToArray();
        var projected = Reference.Project(rows, Hidden, _w.AsSpan(0, dim * Hidden).ToArray(), dim);
        for (var i = 0; i < projected.Length; i++) projected[i] += _b[i % dim];
        return Reference.Normalize(projected, dim);
    }

    private static readonly LlmOptions AsBgeM3 = new() { Device = "cpu", Architecture = "BgeM3EmbeddingModel" };

    private TempFolder Build(string architecture, bool inCheckpoint, bool withSparse = false, int dim = Hidden)
    {
        var tensors = Checkpoints.ReadAll(Golden);
        var f = new TempFolder();
        var w = _w.AsSpan(0, dim * Hidden).ToArray();
        var b = _b.AsSpan(0, dim).ToArray();
        if (inCheckpoint)
        {
            tensors["colbert_linear.weight"] = ([dim, Hidden], w);
            tensors["colbert_linear.bias"] = ([dim], b);
        }
        else
        {
            SafeTensorsWriter.WriteF32(f.File("colbert_linear.safetensors"),
                new Dictionary<string, (long[], float[])> { ["weight"] = ([dim, Hidden], w), ["bias"] = ([dim], b) });
        }
        if (withSparse)
        {
            tensors["sparse_linear.weight"] = ([1, Hidden], new float[Hidden]);
            tensors["sparse_linear.bias"] = ([1], new float[1]);
        }
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        Checkpoints.WriteConfig(Golden, f.Path, architecture);
        return f;
    }

    [TestCase("XLMRobertaModel", false, false)]   // the hub's config.json, loaded with LlmOptions.Architecture
    [TestCase("BgeM3EmbeddingModel", true, true)]
    [TestCase("BgeM3EmbeddingModel", false, false)]
    public void TokenEmbedDropsBosAndProjects(string architecture, bool inCheckpoint, bool withSparse)
    {
        using var f = Build(architecture, inCheckpoint, withSparse);
        using var llm = new Llm(f.Path, architecture == "XLMRobertaModel" ? AsBgeM3 : new LlmOptions { Device = "cpu" });
        Assert.That(llm.Architecture, Is.EqualTo("BgeM3EmbeddingModel"));
        Assert.That(llm.IsLateInteraction, Is.False, "vLLM scores BGE-M3 by its dense vector");

        var outputs = llm.Encode(Prompts, PoolingTask.TokenEmbed);
        var max = 0f;
        for (var r = 0; r < 2; r++)
        {
            var len = Prompts[r].TokenIds!.Count;
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { len - 1, Hidden }), "the <s> vector is dropped");
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, Expected(r, 1)));
        }
        TestContext.Out.WriteLine($"BGE-M3 colbert ({architecture}, {(inCheckpoint ? "in checkpoint" : "colbert_linear.safetensors")}): max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));

        var embed = llm.Encode(Prompts, PoolingTask.Embed);
        var maxDense = 0f;
        for (var r = 0; r < 2; r++)
            maxDense = Math.Max(maxDense, Reference.MaxAbsDiff(embed[r].Outputs.Data, Reference.Normalize(Reference.Rows(_hidden, _t, Hidden, r, 1), Hidden)));
        TestContext.Out.WriteLine($"BGE-M3 dense (CLS): max |diff| = {maxDense:E2}");
        Assert.That(maxDense, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void APromptWithoutBosKeepsEveryVector()
    {
        using var f = Build("XLMRobertaModel", inCheckpoint: false);
        using var llm = new Llm(f.Path, AsBgeM3);
        var ids = Prompts[0].TokenIds!.Skip(1).ToArray();
        var o = llm.Encode(Prompt.FromTokenIds(ids), PoolingTask.TokenEmbed, new PoolingParams { Dimensions = 16 });
        Assert.That(o[0].Outputs.Shape, Is.EqualTo(new[] { ids.Length, 16 }));
    }

    [Test]
    public void BgeM3WithoutColBertLinearFails()
    {
        using var f = new TempFolder().CopyFrom(Golden, "model.safetensors");
        Checkpoints.WriteConfig(Golden, f.Path, "BgeM3EmbeddingModel");
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;
        Assert.That(e.TensorName, Is.EqualTo("colbert_linear.weight"));
        Assert.That(e.Message, Does.Contain("colbert_linear.safetensors"));
    }

    [Test]
    public void MisShapedColBertLinearIsNamed()
    {
        using var f = new TempFolder().CopyFrom(Golden, "model.safetensors", "config.json");
        SafeTensorsWriter.WriteF32(f.File("colbert_linear.safetensors"),
            new Dictionary<string, (long[], float[])> { ["weight"] = ([Hidden, 63], new float[Hidden * 63]) });
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, AsBgeM3).Dispose())!;
        Assert.That(e.Message, Does.Contain("[64, 63]"));
    }

    /// <summary>A plain XLM-R folder never silently becomes BGE-M3: the projection beside it is an error that names the override.</summary>
    [TestCase(true)]
    [TestCase(false)]
    public void PlainXlmRobertaWithColBertLinearNamesTheOverride(bool inCheckpoint)
    {
        using var f = Build("XLMRobertaModel", inCheckpoint);
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;
        Assert.That(e.Message, Does.Contain("LlmOptions.Architecture = \"BgeM3EmbeddingModel\""));
        Assert.That(e.TensorName, Is.EqualTo("colbert_linear.weight"));
    }

    /// <summary>
    /// A non-square colbert_linear [32, 64]: Dimension is the TokenEmbed width (32), TokenEmbed vectors match
    /// normalize(W·h + b), and Embed keeps the backbone's 64.
    /// </summary>
    [TestCase(true)]
    [TestCase(false)]
    public void NonSquareColBertLinearSetsDimension(bool inCheckpoint)
    {
        const int dim = 32;
        using var f = Build("BgeM3EmbeddingModel", inCheckpoint, dim: dim);
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That(llm.Dimension, Is.EqualTo(dim));
        var outputs = llm.Encode(Prompts, PoolingTask.TokenEmbed);
        var max = 0f;
        for (var r = 0; r < 2; r++)
        {
            Assert.That(outputs[r].Outputs.Shape[1], Is.EqualTo(llm.Dimension));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, Expected(r, 1, dim)));
        }
        TestContext.Out.WriteLine($"BGE-M3 non-square colbert_linear [{dim}, {Hidden}]: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
        Assert.That(llm.Encode(Prompts[0], PoolingTask.Embed)[0].Outputs.Shape, Is.EqualTo(new[] { Hidden }));
        Assert.That(() => llm.Encode(Prompts[0], PoolingTask.TokenEmbed, new PoolingParams { Dimensions = dim + 1 }),
            Throws.TypeOf<ArgumentOutOfRangeException>(), "the cut is checked against the TokenEmbed width");
    }

    [Test]
    public void SparseLinearWithoutColBertIsStillUnexpected()
    {
        using var f = new TempFolder();
        var tensors = Checkpoints.ReadAll(Golden);
        tensors["sparse_linear.weight"] = ([1, Hidden], new float[Hidden]);
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        Checkpoints.WriteConfig(Golden, f.Path, "XLMRobertaModel");
        var e = Assert.Throws<ModelLoadException>(() => new Llm(f.Path, new LlmOptions { Device = "cpu" }).Dispose())!;
        Assert.That(e.TensorName, Is.EqualTo("sparse_linear.weight"));
    }
}
