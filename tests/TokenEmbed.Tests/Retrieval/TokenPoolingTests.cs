using System.Text.Json;
using NUnit.Framework;
using TokenEmbed.Pooling;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Retrieval;

/// <summary>
/// PyLate's token pooling against scipy: <c>Fixtures/token_pooling/cases.json</c> holds token vectors with the labels
/// <c>fcluster(linkage(1 - S, "ward"), maxclust)</c> gave them and the pooled vectors PyLate's
/// <c>pool_embeddings_hierarchical</c> returns, and cases of sentence-transformers v6's <c>pool_document_embeddings</c>
/// (linkage over the condensed distances, protected vectors first), all written by the <c>generate.py</c> next to it
/// (scipy 1.10.1).
/// </summary>
public sealed class TokenPoolingTests
{
    private sealed record Case(string Name, bool SentenceTransformers, int Tokens, int Dim, int PoolFactor, int ProtectedTokens, float[] Vectors, int[] Labels, int PooledTokens, float[] Pooled);

    private static IEnumerable<TestCaseData> Cases()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "token_pooling", "cases.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            static float[] F(JsonElement e) => System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(Convert.FromBase64String(e.GetString()!)).ToArray();
            var item = new Case(c.GetProperty("name").GetString()!, c.GetProperty("method").GetString() == "sentence_transformers", c.GetProperty("tokens").GetInt32(), c.GetProperty("dim").GetInt32(),
                c.GetProperty("pool_factor").GetInt32(), c.GetProperty("protected_tokens").GetInt32(), F(c.GetProperty("vectors")),
                c.GetProperty("labels").EnumerateArray().Select(v => v.GetInt32()).ToArray(), c.GetProperty("pooled_tokens").GetInt32(), F(c.GetProperty("pooled")));
            yield return new TestCaseData(item).SetArgDisplayNames(item.Name);
        }
    }

    [TestCaseSource(nameof(Cases))]
    public void ClustersEqualScipysAndPooledVectorsEqualPyLates(object boxed)
    {
        var c = (Case)boxed;
        var rest = c.Tokens - c.ProtectedTokens;
        var tail = c.Vectors.AsSpan(c.ProtectedTokens * c.Dim);
        var clusters = Math.Max(rest / c.PoolFactor, 1);
        var labels = c.SentenceTransformers ? HierarchicalPooling.CondensedLabels(tail, rest, c.Dim, clusters) : HierarchicalPooling.Labels(tail, rest, c.Dim, clusters);
        Assert.That(labels, Is.EqualTo(c.Labels), "fcluster labels, in scipy's numbering");

        var document = new PoolingOutput(c.Vectors, [c.Tokens, c.Dim]);
        var pooled = c.SentenceTransformers
            ? HierarchicalPooling.Pool(document, c.PoolFactor, c.ProtectedTokens, sentenceTransformers: true)
            : LateInteraction.PoolTokens(document, c.PoolFactor, c.ProtectedTokens);
        Assert.That(pooled.Shape, Is.EqualTo(new[] { c.PooledTokens, c.Dim }));
        var max = Reference.MaxAbsDiff(pooled.Data, c.Pooled);
        TestContext.Out.WriteLine($"{c.Name}: {c.Tokens} → {c.PooledTokens} vectors, max |diff| vs PyLate = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-6f));
    }

    [Test]
    public void AnotherLinkageWouldNotMatchTheFixtures()
    {
        // The fixtures can tell clusterings apart: cutting the same documents into clusters of consecutive tokens (a naive
        // pooling) gives other labels on every random case.
        var differing = Cases().Select(d => (Case)d.Arguments[0]!).Where(c => c.Name.StartsWith("random_") && c.Tokens >= 12).Count(c =>
        {
            var rest = c.Tokens - c.ProtectedTokens;
            var clusters = Math.Max(rest / c.PoolFactor, 1);
            var naive = Enumerable.Range(0, rest).Select(i => i * clusters / rest + 1).ToArray();
            return !naive.SequenceEqual(c.Labels);
        });
        Assert.That(differing, Is.GreaterThanOrEqualTo(8));
    }

    [Test]
    public void EdgeCasesKeepPyLatesOrderAndValidateArguments()
    {
        var v = new PoolingOutput(Reference.Normalize(Reference.Gaussian(3 * 4, 5, 1.0), 4), [3, 4]);
        Assert.That(LateInteraction.PoolTokens(v, 1).Data, Is.EqualTo(v.Data), "pool factor 1 is no pooling");
        var two = LateInteraction.PoolTokens(new PoolingOutput(v.Data[..8], [2, 4]), 2, 1);
        Assert.That(two.Data, Is.EqualTo(v.Data[4..8].Concat(v.Data[..4]).ToArray()), "one token to pool: it, then the protected [CLS]");
        Assert.That(LateInteraction.PoolTokens(v, 2, 5).Data, Is.EqualTo(v.Data), "everything protected");
        Assert.That(() => LateInteraction.PoolTokens(v, 0), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => LateInteraction.PoolTokens(v, 2, -1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => LateInteraction.PoolTokens(new PoolingOutput([float.NaN, 0, 0, 0], [1, 4]), 2), Throws.ArgumentException);
    }
}
