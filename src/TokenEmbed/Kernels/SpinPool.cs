using System.Diagnostics;

namespace TokenEmbed.Kernels;

/// <summary>
/// Two-way fork/join for kernels of a few tens of microseconds (a 16-token query's linear layers), where waking a thread-pool
/// or OpenMP thread per call would cost as much as the work: one helper thread spins for new work for up to 2 ms after its
/// last part (as ONNX Runtime's and OpenMP's pool threads do), then sleeps until the next call. The caller runs part 0, the
/// helper part 1. A call that finds the helper busy (another thread's kernel) runs both parts itself.
/// </summary>
internal static class SpinPool
{
    private static readonly long SpinTicks = Stopwatch.Frequency / 500;   // 2 ms
    private static readonly object Gate = new();
    private static readonly SemaphoreSlim Wake = new(0);
    private static Thread? _helper;
    private static Action<int>? _work;
    private static long _posted, _done;
    private static int _busy, _sleeping;
    private static Exception? _failure;

    /// <summary>Whether a second core is there to share the work.</summary>
    public static bool CanSplit { get; } = Environment.ProcessorCount > 1;

    /// <summary>Runs <paramref name="work"/>(0) here and <paramref name="work"/>(1) on the helper, and returns when both ended.</summary>
    public static void Run(Action<int> work)
    {
        if (!CanSplit || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            work(0);
            work(1);
            return;
        }
        try
        {
            EnsureHelper();
            _work = work;
            _failure = null;
            var ticket = Interlocked.Increment(ref _posted);
            if (Volatile.Read(ref _sleeping) == 1) Wake.Release();
            work(0);
            var spin = new SpinWait();
            while (Volatile.Read(ref _done) != ticket) spin.SpinOnce(-1);
            if (_failure is { } e) throw new InvalidOperationException("A kernel's second part failed.", e);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private static void EnsureHelper()
    {
        if (_helper is not null) return;
        lock (Gate)
        {
            if (_helper is not null) return;
            var t = new Thread(Loop) { IsBackground = true, Name = "TokenEmbed kernel helper" };
            t.Start();
            _helper = t;
        }
    }

    private static void Loop()
    {
        var seen = 0L;
        while (true)
        {
            var since = Stopwatch.GetTimestamp();
            while (Volatile.Read(ref _posted) == seen)
            {
                if (Stopwatch.GetTimestamp() - since < SpinTicks)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                // Sleep until the next call: a caller that posts after this flag is set releases the semaphore; one that posted
                // just before is seen by the check below (a stale release only costs one more empty spin).
                Volatile.Write(ref _sleeping, 1);
                if (Volatile.Read(ref _posted) == seen) Wake.Wait();
                Volatile.Write(ref _sleeping, 0);
                since = Stopwatch.GetTimestamp();
            }
            seen = Volatile.Read(ref _posted);
            try
            {
                _work!(1);
            }
            catch (Exception e)
            {
                _failure = e;
            }
            Volatile.Write(ref _done, seen);
        }
    }
}
