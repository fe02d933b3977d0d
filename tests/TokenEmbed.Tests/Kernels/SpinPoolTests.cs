using NUnit.Framework;
using TokenEmbed.Kernels;

namespace TokenEmbed.Tests.Kernels;

/// <summary>The kernels' two-core fork/join: every item exactly once, on both threads, and failures surfaced, not lost.</summary>
[NonParallelizable]
public sealed class SpinPoolTests
{
    [Test]
    public void EveryItemRunsOnceAndBothThreadsTakeSome()
    {
        if (!SpinPool.CanSplit) Assert.Ignore("One core.");
        var caller = Environment.CurrentManagedThreadId;
        var helperItems = 0;
        using (SpinPool.Enter())
            for (var round = 0; round < 200; round++)
            {
                var runs = new int[64];
                SpinPool.For(runs.Length, i =>
                {
                    Interlocked.Increment(ref runs[i]);
                    if (Environment.CurrentManagedThreadId != caller) Interlocked.Increment(ref helperItems);
                    Thread.SpinWait(2000);   // items of a few microseconds, as a GEMM strip
                });
                Assert.That(runs, Is.All.EqualTo(1), $"round {round}");
            }
        TestContext.Out.WriteLine($"helper took {helperItems} of {200 * 64} items");
        Assert.That(helperItems, Is.GreaterThan(0), "the helper shares the work inside a scope");

        // Outside a scope everything runs on the caller.
        var elsewhere = 0;
        SpinPool.For(32, _ => { if (Environment.CurrentManagedThreadId != caller) Interlocked.Increment(ref elsewhere); });
        Assert.That(elsewhere, Is.EqualTo(0));
    }

    [Test]
    public void BackToBackTinyJobsNeverHang()
    {
        // The race that hung a benchmark: the caller finishes a job alone before the helper joins it and posts the next one at
        // once; a helper that then joined with the old ticket left the caller waiting forever. A deadlock fails here.
        if (!SpinPool.CanSplit) Assert.Ignore("One core.");
        const int Rounds = 2_000_000;
        var total = 0L;
        var run = Task.Run(() =>
        {
            using var scope = SpinPool.Enter();
            for (var round = 0; round < Rounds; round++)
                SpinPool.For(2 + round % 3, i => Interlocked.Add(ref total, i + 1));
        });
        Assert.That(run.Wait(TimeSpan.FromSeconds(60)), Is.True, $"{Rounds} tiny jobs finish");
        var expected = Enumerable.Range(0, Rounds).Sum(r => (long)Enumerable.Range(1, 2 + r % 3).Sum());
        Assert.That(Interlocked.Read(ref total), Is.EqualTo(expected), "every item of every job ran once");
    }

    [Test]
    public void AFailingItemIsReportedAndTheNextJobIsClean()
    {
        if (!SpinPool.CanSplit) Assert.Ignore("One core.");
        using var scope = SpinPool.Enter();
        Assert.That(() => SpinPool.For(64, i => { Thread.SpinWait(1000); if (i == 40) throw new ArithmeticException("item 40"); }),
            Throws.InstanceOf<Exception>().With.Message.Contains("item 40").Or.InnerException.Message.Contains("item 40"));
        var runs = new int[16];
        SpinPool.For(runs.Length, i => Interlocked.Increment(ref runs[i]));
        Assert.That(runs, Is.All.EqualTo(1), "no helper still runs the failed job's items");
    }
}
