using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models;
using TokenEmbed.Models.Architectures;
using TokenEmbed.Models.Heads;
using TokenEmbed.Pooling;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// A sample ColBERT variant added the way docs/ADDING_A_MODEL.md says: one architecture class over an existing backbone
/// (here XLM-RoBERTa) and one registry line. Its head is a <c>token_proj</c> linear with bias on every token but the last;
/// Embed is the mean of the projected tokens. Checked against transformers' hidden states projected in plain C#.
/// </summary>
internal sealed class SampleColBert(string name) : PoolingArchitecture(name, BackboneFamily.XlmRoberta, [])
{
    public override Pooler BuildPooler(HeadContext c)
    {
        RejectDenseModules(c, "a token_proj head");
        var head = ProjectionHead.LinearWithOptionalBias(c.Weights, "token_proj.weight", c.Backbone.HiddenSize, c.Consumed);
        return new Pooler(c.Backbone.HiddenSize, head, new EmbedPlan(PoolingMode.Mean, head), isLateInteraction: true,
            tokenFilter: ids => [.. Enumerable.Repeat(true, ids.Count - 1), false]);
    }
}

[NonParallelizable]
public sealed class SampleColBertVariantTests
{
    private const int Hidden = 64, Dim = 20;
    private static string Golden => TestPaths.Fixture("goldens", "xlm_roberta");

    [OneTimeSetUp]
    public void Register() => ModelRegistry.Register(new SampleColBert("SampleColBertModel"));   // the registry line

    [Test]
    public void TheVariantLoadsAndMatchesTheReference()
    {
        var w = Reference.Gaussian(Dim * Hidden, 21, 0.1);
        var b = Reference.Gaussian(Dim, 22, 0.1);
        using var f = new TempFolder();
        var tensors = Checkpoints.ReadAll(Golden);
        tensors["token_proj.weight"] = ([Dim, Hidden], w);
        tensors["token_proj.bias"] = ([Dim], b);
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        Checkpoints.WriteConfig(Golden, f.Path, "SampleColBertModel");

        using var golden = SafeTensorsFile.Open(Path.Combine(Golden, "golden.safetensors"));
        var (ids, shape) = Reference.ReadInt64(golden, "input_ids");
        var (mask, _) = Reference.ReadInt64(golden, "attention_mask");
        var (hidden, _) = Reference.ReadFloat32(golden, "last_hidden_state");
        var t = (int)shape[1];

        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        Assert.That((llm.Architecture, llm.Dimension, llm.IsLateInteraction), Is.EqualTo(("SampleColBertModel", Dim, true)));
        var max = 0f;
        for (var r = 0; r < 2; r++)
        {
            var prompt = Reference.ValidIds(ids, mask, t, r);
            var projected = Reference.Project(Reference.Rows(hidden, t, Hidden, r, prompt.Length), Hidden, w, Dim);
            for (var i = 0; i < projected.Length; i++) projected[i] += b[i % Dim];
            var expected = Reference.Normalize(projected, Dim).AsSpan(0, (prompt.Length - 1) * Dim).ToArray();
            var o = llm.Encode(Prompt.FromTokenIds(prompt), PoolingTask.TokenEmbed)[0].Outputs;
            Assert.That(o.Shape, Is.EqualTo(new[] { prompt.Length - 1, Dim }), "the last token's vector is dropped");
            max = Math.Max(max, Reference.MaxAbsDiff(o.Data, expected));
        }
        TestContext.Out.WriteLine($"sample ColBERT variant vs reference: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [Test]
    public void ANameCannotBeRegisteredTwice() =>
        Assert.That(() => ModelRegistry.Register(new SampleColBert("HF_ColBERT")), Throws.InvalidOperationException);
}
