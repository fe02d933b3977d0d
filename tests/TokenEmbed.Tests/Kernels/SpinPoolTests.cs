using NUnit.Framework;
using TokenEmbed.Kernels;

namespace TokenEmbed.Tests.Kernels;

/// <summary>
/// The kernels' fork/join: every item exactly once, on the caller and the helpers, back-to-back jobs that never hang, with
/// two workers and with four (three helpers, more threads than this machine may have cores), and failures surfaced, not lost.
/// </summary>
[NonParallelizable]
public sealed class SpinPoolTests
{
    [TestCase(2)]
    [TestCase(4)]
    public void EveryItemRunsOnceAndTheHelpersTakeSome(int workers)
    {
        if (!SpinPool.CanSplit) Assert.Ignore("One core.");
        var caller = Environment.CurrentManagedThreadId;
        var helperItems = 0;
        var threads = new System.Collections.Concurrent.ConcurrentDictionary<int, bool>();
        using (SpinPool.Enter(workers))
        {
            Assert.That(SpinPool.Workers, Is.EqualTo(workers));
            for (var round = 0; round < 200; round++)
            {
                var runs = new int[64];
                SpinPool.For(runs.Length, i =>
                {
                    Interlocked.Increment(ref runs[i]);
                    threads[Environment.CurrentManagedThreadId] = true;
                    if (Environment.CurrentManagedThreadId != caller) Interlocked.Increment(ref helperItems);
                    Thread.SpinWait(2000);   // items of a few microseconds, as a GEMM strip
                });
                Assert.That(runs, Is.All.EqualTo(1), $"round {round}");
            }
        }
        TestContext.Out.WriteLine($"helpers took {helperItems} of {200 * 64} items on {threads.Count} threads");
        Assert.That(helperItems, Is.GreaterThan(0), "the helpers share the work inside a scope");
        Assert.That(threads.Count, Is.LessThanOrEqualTo(workers), "no more threads than the scope asked for");
        Assert.That(SpinPool.Workers, Is.EqualTo(1), "outside a scope");

        // Outside a scope everything runs on the caller.
        var elsewhere = 0;
        SpinPool.For(32, _ => { if (Environment.CurrentManagedThreadId != caller) Interlocked.Increment(ref elsewhere); });
        Assert.That(elsewhere, Is.EqualTo(0));
    }

    [Test]
    public void AScopeRightAfterALargerOneGetsItsHelper()
    {
        // Helpers the larger scope woke, and that no longer are wanted, go back to sleep; they must not take the wake-up of the
        // one that is (a shared semaphore let them: the next scope's helper slept through it, and its jobs ran on the caller).
        if (!SpinPool.CanSplit) Assert.Ignore("One core.");
        var caller = Environment.CurrentManagedThreadId;
        for (var round = 0; round < 20; round++)
        {
            using (SpinPool.Enter(4)) SpinPool.For(8, _ => Thread.SpinWait(1000));
            Thread.Sleep(round % 2 == 0 ? 0 : 20);   // within the helpers' lingering spin, and after it
            var helperItems = 0;
            using (SpinPool.Enter(2))
                for (var job = 0; job < 50; job++)
                    SpinPool.For(16, _ =>
                    {
                        if (Environment.CurrentManagedThreadId != caller) Interlocked.Increment(ref helperItems);
                        Thread.SpinWait(5000);
                    });
            Assert.That(helperItems, Is.GreaterThan(0), $"round {round}: the two-worker scope's helper joined");
        }
    }

    [TestCase(2, 2_000_000)]
    [TestCase(4, 200_000)]
    public void BackToBackTinyJobsNeverHang(int workers, int rounds)
    {
        // The race that hung a benchmark: the caller finishes a job alone before the helper joins it and posts the next one at
        // once; a helper that then joined with the old ticket left the caller waiting forever. A deadlock fails here.
        if (!SpinPool.CanSplit) Assert.Ignore("One core.");
        var total = 0L;
        var run = Task.Run(() =>
        {
            using var scope = SpinPool.Enter(workers);
            for (var round = 0; round < rounds; round++)
                SpinPool.For(2 + round % 3, i => Interlocked.Add(ref total, i + 1));
        });
        Assert.That(run.Wait(TimeSpan.FromSeconds(60)), Is.True, $"{rounds} tiny jobs finish");
        var expected = Enumerable.Range(0, rounds).Sum(r => (long)Enumerable.Range(1, 2 + r % 3).Sum());
        Assert.That(Interlocked.Read(ref total), Is.EqualTo(expected), "every item of every job ran once");
    }

    [TestCase(2)]
    [TestCase(4)]
    public void AFailingItemIsReportedAndTheNextJobIsClean(int workers)
    {
        if (!SpinPool.CanSplit) Assert.Ignore("One core.");
        using var scope = SpinPool.Enter(workers);
        Assert.That(() => SpinPool.For(64, i => { Thread.SpinWait(1000); if (i == 40) throw new ArithmeticException("item 40"); }),
            Throws.InstanceOf<Exception>().With.Message.Contains("item 40").Or.InnerException.Message.Contains("item 40"));
        var runs = new int[16];
        SpinPool.For(runs.Length, i => Interlocked.Increment(ref runs[i]));
        Assert.That(runs, Is.All.EqualTo(1), "no helper still runs the failed job's items");
    }
}
