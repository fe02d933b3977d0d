using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Api;

/// <summary>
/// The scheduler batches requests from many callers, pools each with its own parameters, honours cancellation and
/// disposal, and gives the numbers each request gets alone.
/// </summary>
[NonParallelizable]
public sealed class AsyncEngineTests
{
    private static string Golden => TestPaths.Fixture("goldens", "qwen3");
    private static Prompt P(int seed, int length) => Prompt.FromTokenIds(Enumerable.Range(0, length).Select(i => 3 + (seed * 31 + i * 7) % 900).ToArray());

    [Test]
    public async Task ConcurrentCallersShareOneBatchAndGetTheirOwnParameters()
    {
        using var llm = new Llm(Golden, new LlmOptions { Device = "cpu" });
        PoolingParams[] ps = [new() { Dimensions = 8 }, new() { Normalize = false }, new(), new() { Dimensions = 16, Normalize = false }];
        var prompts = Enumerable.Range(0, 8).Select(i => P(i, 4 + i * 3)).ToArray();
        var alone = prompts.Select((p, i) => llm.Encode(p, PoolingTask.TokenEmbed, ps[i % 4])[0].Outputs).ToArray();

        var before = llm.Scheduler.Counts;
        llm.Scheduler.Pause();
        var tasks = prompts.Select((p, i) => Task.Run(() => llm.EncodeAsync(p, PoolingTask.TokenEmbed, ps[i % 4]))).ToArray();
        await WaitForQueued(llm, 8, tasks);
        llm.Scheduler.Resume();
        var results = await Task.WhenAll(tasks);
        var after = llm.Scheduler.Counts;
        Assert.That((after.Rounds - before.Rounds, after.Batches - before.Batches, after.Requests - before.Requests), Is.EqualTo((1L, 1L, 8L)),
            "eight callers, one round, one batch");
        var max = 0f;
        for (var i = 0; i < 8; i++)
        {
            Assert.That(results[i][0].Outputs.Shape, Is.EqualTo(alone[i].Shape), $"request {i} has its own Dimensions");
            max = Math.Max(max, Reference.MaxAbsDiff(results[i][0].Outputs.Data, alone[i].Data));
        }
        TestContext.Out.WriteLine($"8 concurrent requests in one batch vs each alone: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
    }

    /// <summary>Waits until the paused scheduler holds <paramref name="count"/> requests (callers prepare on their own threads first).</summary>
    private static async Task WaitForQueued(Llm llm, int count, Task[] tasks)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (llm.Scheduler.Queued < count)
        {
            if (tasks.FirstOrDefault(t => t.IsFaulted) is { } failed) await failed;
            if (sw.Elapsed > TimeSpan.FromSeconds(30)) Assert.Fail($"only {llm.Scheduler.Queued} of {count} requests were queued");
            await Task.Delay(5);
        }
    }

    [Test]
    public async Task ARequestCancelledBeforeItsBatchIsRemoved()
    {
        using var llm = new Llm(Golden, new LlmOptions { Device = "cpu" });
        using var cts = new CancellationTokenSource();
        llm.Scheduler.Pause();
        var before = llm.Scheduler.Counts;
        var cancelled = llm.EncodeAsync(P(1, 10), PoolingTask.TokenEmbed, null, cts.Token);
        var kept = llm.EncodeAsync(P(2, 10), PoolingTask.TokenEmbed);
        await WaitForQueued(llm, 2, [cancelled, kept]);
        cts.Cancel();
        Assert.That(async () => await cancelled, Throws.InstanceOf<OperationCanceledException>());
        llm.Scheduler.Resume();
        Assert.That((await kept)[0].Outputs.Shape, Is.EqualTo(new[] { 10, 64 }));
        Assert.That(llm.Scheduler.Counts.Requests - before.Requests, Is.EqualTo(1), "the cancelled request never ran");
        Assert.That(() => llm.EncodeAsync(P(3, 5), PoolingTask.TokenEmbed, null, cts.Token), Throws.InstanceOf<OperationCanceledException>());
    }

    [Test]
    public async Task DisposeFailsPendingRequestsAndStopsTheRunner()
    {
        var llm = new Llm(Golden, new LlmOptions { Device = "cpu" });
        llm.Scheduler.Pause();
        var pending = Enumerable.Range(0, 3).Select(i => llm.EncodeAsync(P(i, 6), PoolingTask.Embed)).ToArray();
        await WaitForQueued(llm, 3, pending);
        llm.Dispose();
        foreach (var t in pending) Assert.That(async () => await t, Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(() => llm.Encode(P(1, 3), PoolingTask.Embed), Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(() => llm.EncodeAsync(P(1, 3), PoolingTask.Embed), Throws.InstanceOf<ObjectDisposedException>());
    }

    /// <summary>Many threads with random prompts and parameters: every result equals the same request encoded alone.</summary>
    [Test]
    public async Task AnyInterleavingGivesEachRequestItsAloneResult()
    {
        using var llm = new Llm(Golden, new LlmOptions { Device = "cpu", MaxBatchTokens = 200 });
        var requests = Enumerable.Range(0, 40).Select(i => (Prompt: P(i, 3 + i * 7 % 37), Params: new PoolingParams { Dimensions = i % 3 == 0 ? 12 : null, Normalize = i % 2 == 0 },
            Task: i % 5 == 0 ? PoolingTask.Embed : PoolingTask.TokenEmbed)).ToArray();
        var alone = requests.Select(r => llm.Encode(r.Prompt, r.Task, r.Params)[0].Outputs.Data).ToArray();
        var results = new float[requests.Length][];
        await Task.WhenAll(Enumerable.Range(0, 4).Select(t => Task.Run(async () =>
        {
            for (var i = t; i < requests.Length; i += 4)
                results[i] = (await llm.EncodeAsync(requests[i].Prompt, requests[i].Task, requests[i].Params))[0].Outputs.Data;
        })));
        var max = Enumerable.Range(0, requests.Length).Max(i => Reference.MaxAbsDiff(results[i], alone[i]));
        TestContext.Out.WriteLine($"40 requests from 4 threads vs alone: max |diff| = {max:E2}, {llm.Scheduler.Counts}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
        var scores = await llm.ScoreAsync(requests[0].Prompt, [requests[1].Prompt, requests[2].Prompt]);
        Assert.That(scores, Has.Count.EqualTo(2));
    }
}
