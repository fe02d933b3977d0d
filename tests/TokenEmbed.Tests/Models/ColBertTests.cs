using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// An HF_ColBERT (colbert-ai layout) checkpoint built from the MiniLM weights with a seeded projection:
/// token_embed must be normalize(hidden · Wᵀ) with hidden = ONNX Runtime's last_hidden_state.
/// </summary>
[NonParallelizable]
public sealed class ColBertTests
{
    private const int Dim = 96;
    private TempFolder _prefixed = null!;
    private TempFolder _unprefixed = null!;
    private float[] _w = null!;
    private Llm _llm = null!;

    [OneTimeSetUp]
    public void Build()
    {
        var mini = TestPaths.MiniLm;
        var tensors = Checkpoints.ReadAll(mini);
        _w = Reference.Gaussian(Dim * 384, seed: 42, scale: 0.05);
        _prefixed = new TempFolder().CopyFrom(mini, Checkpoints.TokenizerFiles);
        _unprefixed = new TempFolder().CopyFrom(mini, Checkpoints.TokenizerFiles);
        foreach (var (folder, prefix) in new[] { (_prefixed, "bert."), (_unprefixed, "") })
        {
            Checkpoints.WriteConfig(mini, folder.Path, "HF_ColBERT");
            var dict = tensors.ToDictionary(kv => prefix + kv.Key, kv => kv.Value);
            dict["linear.weight"] = ([Dim, 384], _w);
            SafeTensorsWriter.WriteF32(folder.File("model.safetensors"), dict);
        }
        _llm = new Llm(_prefixed.Path, new LlmOptions { Device = "cpu" });
        ReadReference();
    }

    [OneTimeTearDown]
    public void Clean()
    {
        _llm?.Dispose();
        _prefixed?.Dispose();
        _unprefixed?.Dispose();
    }

    [TestCase(false, null)]
    [TestCase(true, null)]
    [TestCase(false, 32)]
    public void TokenEmbedIsNormalizedProjection(bool unprefixed, int? dimensions)
    {
        using var other = unprefixed ? new Llm(_unprefixed.Path, new LlmOptions { Device = "cpu" }) : null;
        var llm = other ?? _llm;
        Assert.That(llm.Dimension, Is.EqualTo(Dim));
        Assert.That(llm.IsLateInteraction, Is.True);

        using var reference = SafeTensorsFile.Open(Path.Combine(TestPaths.MiniLm, "reference.safetensors"));
        var (ids, shape) = Reference.ReadInt64(reference, "main.input_ids");
        var (mask, _) = Reference.ReadInt64(reference, "main.attention_mask");
        var (hidden, _) = Reference.ReadFloat32(reference, "main.last_hidden_state");
        int b = (int)shape[0], t = (int)shape[1];
        var prompts = Enumerable.Range(0, b).Select(r => Prompt.FromTokenIds(Reference.ValidIds(ids, mask, t, r))).ToArray();
        var outputs = llm.Encode(prompts, PoolingTask.TokenEmbed, new PoolingParams { Dimensions = dimensions });

        var d = dimensions ?? Dim;
        var max = 0f;
        for (var r = 0; r < b; r++)
        {
            var len = prompts[r].TokenIds!.Count;
            var projected = Reference.Project(Reference.Rows(hidden, t, 384, r, len), 384, _w, Dim);
            var cut = new float[len * d];
            for (var i = 0; i < len; i++) Array.Copy(projected, i * Dim, cut, i * d, d);
            var expected = Reference.Normalize(cut, d);
            Assert.That(outputs[r].Outputs.Shape, Is.EqualTo(new[] { len, d }));
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, expected));
        }
        TestContext.Out.WriteLine($"HF_ColBERT ({(unprefixed ? "unprefixed" : "bert.")}, dims {d}): max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    /// <summary>Rows (by batch index) of the reference's main batch used as queries and documents.</summary>
    private const int Query = 4;
    private static readonly int[] Docs = [3, 0, 7];

    private string[] _texts = null!;
    private float[][] _refVectors = null!;

    /// <summary>
    /// The independent expectation: texts and ONNX Runtime hidden states of the reference's main batch, projected and
    /// normalized in plain C#; the score is a double-precision MaxSim over them (no library code involved).
    /// </summary>
    private void ReadReference()
    {
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(TestPaths.MiniLm, "texts.json")));
        var all = doc.RootElement.GetProperty("texts").EnumerateArray().Select(e => e.GetString()!).ToArray();
        var main = doc.RootElement.GetProperty("batches")[0].GetProperty("text_indices").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        _texts = main.Select(i => all[i]).ToArray();
        using var reference = SafeTensorsFile.Open(Path.Combine(TestPaths.MiniLm, "reference.safetensors"));
        var (mask, shape) = Reference.ReadInt64(reference, "main.attention_mask");
        var (hidden, _) = Reference.ReadFloat32(reference, "main.last_hidden_state");
        int b = (int)shape[0], t = (int)shape[1];
        _refVectors = Enumerable.Range(0, b).Select(r =>
        {
            var len = (int)Enumerable.Range(0, t).Sum(j => mask[r * t + j]);
            return Reference.Normalize(Reference.Project(Reference.Rows(hidden, t, 384, r, len), 384, _w, Dim), Dim);
        }).ToArray();
    }

    private double Expected(int q, int d) => Reference.MaxSim(_refVectors[q], _refVectors[d], Dim);

    [Test]
    public void ScoreOneToOne()
    {
        var s = _llm.Score(_texts[Query], _texts[Docs[0]]);
        Assert.That(s, Has.Count.EqualTo(1));
        Assert.That(s[0].Outputs.Score, Is.EqualTo(Expected(Query, Docs[0])).Within(1e-4));
    }

    [Test]
    public void ScoreOneToMany()
    {
        var s = _llm.Score(_texts[Query], Docs.Select(d => _texts[d]).ToArray());
        Assert.That(s, Has.Count.EqualTo(Docs.Length));
        for (var i = 0; i < Docs.Length; i++)
            Assert.That(s[i].Outputs.Score, Is.EqualTo(Expected(Query, Docs[i])).Within(1e-4), $"doc {i}");
    }

    [Test]
    public void ScoreZipped()
    {
        var queries = new[] { Query, 1, 5 };
        var s = _llm.Score(queries.Select(q => _texts[q]).ToArray(), Docs.Select(d => _texts[d]).ToArray());
        for (var i = 0; i < Docs.Length; i++)
            Assert.That(s[i].Outputs.Score, Is.EqualTo(Expected(queries[i], Docs[i])).Within(1e-4), $"pair {i}");
        Assert.Throws<ArgumentException>(() => _llm.Score(queries.Take(2).Select(q => _texts[q]).ToArray(), Docs.Select(d => _texts[d]).ToArray()));
    }

    [Test]
    public void PromptOverloadsScoreLikeTheStringOnes()
    {
        var ids = _llm.Tokenize(_texts[Query]);
        var s = _llm.Score(Prompt.FromTokenIds(ids), Docs.Select(d => (Prompt)_texts[d]).ToArray());
        for (var i = 0; i < Docs.Length; i++)
            Assert.That(s[i].Outputs.Score, Is.EqualTo(Expected(Query, Docs[i])).Within(1e-4), $"doc {i}");
        Assert.That(_llm.Score(Prompt.FromTokenIds(ids), (Prompt)_texts[Docs[0]])[0].Outputs.Score, Is.EqualTo(Expected(Query, Docs[0])).Within(1e-4));
    }
}
