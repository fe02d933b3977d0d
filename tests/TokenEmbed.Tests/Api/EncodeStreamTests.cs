using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Api;

/// <summary>Progress-reporting and streaming encodes equal the plain batch encode, in order; progress is monotonic and complete.</summary>
[NonParallelizable]
public sealed class EncodeStreamTests
{
    private Llm _llm = null!;
    private Prompt[] _prompts = null!;

    [OneTimeSetUp]
    public void Load()
    {
        _llm = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });
        var rng = new Random(5);
        _prompts = Enumerable.Range(0, 600).Select(_ => Prompt.FromTokenIds(Enumerable.Range(0, rng.Next(2, 12)).Select(_ => rng.Next(5, 90)).ToArray())).ToArray();
    }

    [OneTimeTearDown]
    public void Free() => _llm?.Dispose();

    [Test]
    public async Task ProgressReachesTheTotalAndOutputsEqualThePlainEncode()
    {
        var reports = new List<EncodeProgress>();
        var withProgress = await _llm.EncodeAsync(_prompts, PoolingTask.TokenEmbed, null, new Sync(reports.Add));
        var plain = _llm.Encode(_prompts, PoolingTask.TokenEmbed);
        Assert.That(reports.Select(r => r.PromptsDone), Is.EqualTo(new[] { 256, 512, 600 }));
        Assert.That(reports.All(r => r.PromptsTotal == 600 && r.TokensPerSecond > 0), Is.True);
        Assert.That(reports[^1].TokensDone, Is.EqualTo(_prompts.Sum(p => (long)p.TokenIds!.Count)));
        AssertSame(withProgress, plain);
    }

    [Test]
    public async Task StreamYieldsEveryOutputInOrder()
    {
        var streamed = new List<PoolingRequestOutput>();
        await foreach (var o in _llm.EncodeStreamAsync(Source(_prompts), PoolingTask.TokenEmbed)) streamed.Add(o);
        AssertSame(streamed, _llm.Encode(_prompts, PoolingTask.TokenEmbed));
    }

    [Test]
    public void CancellationStopsTheStream()
    {
        using var cts = new CancellationTokenSource();
        Assert.ThrowsAsync(Is.InstanceOf<OperationCanceledException>(), async () =>
        {
            var n = 0;
            await foreach (var _ in _llm.EncodeStreamAsync(Source(_prompts), PoolingTask.TokenEmbed, null, cts.Token))
                if (++n == 10) cts.Cancel();
        });
    }

    private static void AssertSame(IReadOnlyList<PoolingRequestOutput> a, IReadOnlyList<PoolingRequestOutput> b)
    {
        Assert.That(a, Has.Count.EqualTo(b.Count));
        for (var i = 0; i < a.Count; i++)
        {
            Assert.That(a[i].PromptTokenIds, Is.EqualTo(b[i].PromptTokenIds), $"prompt {i}");
            Assert.That(Reference.MaxAbsDiff(a[i].Outputs.Data, b[i].Outputs.Data), Is.LessThanOrEqualTo(1e-5f), $"prompt {i}");
        }
    }

    private static async IAsyncEnumerable<Prompt> Source(IEnumerable<Prompt> prompts)
    {
        foreach (var p in prompts)
        {
            await Task.Yield();
            yield return p;
        }
    }

    private sealed class Sync(Action<EncodeProgress> report) : IProgress<EncodeProgress>
    {
        public void Report(EncodeProgress value) => report(value);
    }
}
