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

    [Test]
    public async Task ALoneSynchronousCallRunsInlineAndABusyEngineBatchesItWithTheOthers()
    {
        using var llm = new Llm(Golden, new LlmOptions { Device = "cpu" });
        var prompts = new[] { P(1, 12), P(2, 5) };
        var queued = await llm.EncodeAsync(prompts, PoolingTask.TokenEmbed);
        var before = llm.Scheduler.Counts;
        var inline = llm.Encode(prompts, PoolingTask.TokenEmbed);
        Assert.That(llm.Scheduler.InlineRounds, Is.EqualTo(1), "an idle engine runs a synchronous call on the caller's thread");
        Assert.That(llm.Scheduler.Counts.Rounds - before.Rounds, Is.EqualTo(1));
        for (var i = 0; i < prompts.Length; i++)
        {
            Assert.That(inline[i].Outputs.Shape, Is.EqualTo(queued[i].Outputs.Shape));
            Assert.That(Reference.MaxAbsDiff(inline[i].Outputs.Data, queued[i].Outputs.Data), Is.EqualTo(0f), $"prompt {i}: the same batch, the same numbers");
        }

        // With a request waiting, a synchronous call queues behind it and both run in one round.
        llm.Scheduler.Pause();
        before = llm.Scheduler.Counts;
        var waiting = llm.EncodeAsync(P(3, 9), PoolingTask.TokenEmbed);
        await WaitForQueued(llm, 1, [waiting]);
        var blocking = Task.Run(() => llm.Encode(P(4, 7), PoolingTask.TokenEmbed));
        await WaitForQueued(llm, 2, [waiting, blocking]);
        llm.Scheduler.Resume();
        await Task.WhenAll(waiting, blocking);
        Assert.That(llm.Scheduler.InlineRounds, Is.EqualTo(1), "the second synchronous call was not run inline");
        Assert.That(llm.Scheduler.Counts.Rounds - before.Rounds, Is.EqualTo(1), "it joined the waiting request's round");
        Assert.That((await blocking)[0].Outputs.Shape, Is.EqualTo(new[] { 7, 64 }));
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

    /// <summary>8 threads × 200 mixed requests (lengths, tasks, Dimensions, Normalize) equal the sequential results; no tensor is left behind.</summary>
    [Test]
    public async Task EightThreadsOfTwoHundredMixedRequestsEqualTheSequentialResults()
    {
        using var llm = new Llm(Golden, new LlmOptions { Device = "cpu", MaxBatchTokens = 512 });
        var rng = new Random(7);
        var requests = Enumerable.Range(0, 1600).Select(i => (Prompt: P(i, 2 + rng.Next(40)),
            Params: new PoolingParams { Dimensions = rng.Next(3) == 0 ? 8 + rng.Next(40) : null, Normalize = rng.Next(2) == 0 },
            Task: rng.Next(4) == 0 ? PoolingTask.Embed : PoolingTask.TokenEmbed)).ToArray();
        var sequential = requests.Select(r => llm.Encode(r.Prompt, r.Task, r.Params)[0].Outputs).ToArray();
        var live = TorchSharp.torch.Tensor.TotalCount;   // process-wide: the awaits continue on other threads
        var results = new PoolingOutput[requests.Length];
        await Task.WhenAll(Enumerable.Range(0, 8).Select(t => Task.Run(async () =>
        {
            for (var i = t; i < requests.Length; i += 8)
                results[i] = (await llm.EncodeAsync(requests[i].Prompt, requests[i].Task, requests[i].Params))[0].Outputs;
        })));
        var max = 0f;
        for (var i = 0; i < requests.Length; i++)
        {
            Assert.That(results[i].Shape, Is.EqualTo(sequential[i].Shape), $"request {i}");
            max = Math.Max(max, Reference.MaxAbsDiff(results[i].Data, sequential[i].Data));
        }
        var c = llm.Scheduler.Counts;
        TestContext.Out.WriteLine($"1600 requests from 8 threads vs sequential: max |diff| = {max:E2}; {c.Requests} prompts in {c.Batches} batches " +
                                  $"({(double)c.Requests / c.Batches:F1} per batch, the sequential ones included)");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
        Assert.That(TorchSharp.torch.Tensor.TotalCount, Is.LessThanOrEqualTo(live), "no tensors left behind by the concurrent requests");
    }

    /// <summary>Disposing while requests are in flight: every caller completes (a result or ObjectDisposedException), nothing hangs, the weights are freed.</summary>
    [Test]
    public async Task DisposeWhileBusyNeitherHangsNorLeaks()
    {
        // Process-wide counts (Dispose runs on another thread). TorchSharp counts a tensor moved into a Parameter as live
        // forever, so a quiet load + dispose leaves a constant residue; a busy dispose must leave exactly the same.
        var quietStart = TorchSharp.torch.Tensor.TotalCount;
        new Llm(Golden, new LlmOptions { Device = "cpu" }).Dispose();
        var residue = TorchSharp.torch.Tensor.TotalCount - quietStart;
        var before = TorchSharp.torch.Tensor.TotalCount;
        var llm = new Llm(Golden, new LlmOptions { Device = "cpu", MaxBatchTokens = 64 });
        var tasks = Enumerable.Range(0, 400).Select(i => Task.Run(() => llm.EncodeAsync(P(i, 5 + i % 30), PoolingTask.TokenEmbed))).ToArray();
        while (llm.Scheduler.Counts.Batches == 0) await Task.Delay(1);   // busy: the first batch has started
        var dispose = Task.Run(llm.Dispose);
        Assert.That(await Task.WhenAny(Task.WhenAll(tasks.Select(t => t.ContinueWith(_ => 0))), Task.Delay(TimeSpan.FromSeconds(60))),
            Is.Not.TypeOf<Task<Task>>().Or.Property("IsCompleted").True);
        Assert.That(dispose.Wait(TimeSpan.FromSeconds(60)), Is.True, "Dispose returns");
        var done = tasks.Count(t => t.IsCompletedSuccessfully);
        var disposed = tasks.Count(t => t.IsFaulted && t.Exception!.InnerException is ObjectDisposedException);
        TestContext.Out.WriteLine($"dispose while busy: {done} completed, {disposed} failed with ObjectDisposedException");
        Assert.That(done + disposed, Is.EqualTo(tasks.Length), "every caller got an answer");
        Assert.That(TorchSharp.torch.Tensor.TotalCount - before, Is.LessThanOrEqualTo(residue), "the weights and every batch's tensors are freed");
    }
}
