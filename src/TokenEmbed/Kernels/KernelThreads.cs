using static TorchSharp.torch;

namespace TokenEmbed.Kernels;

/// <summary>
/// How a TokenEmbed kernel spreads its items over cores: within a <see cref="SpinPool"/> scope (a forward that runs on
/// TokenEmbed's kernels, or a small batch, with libtorch on one thread) over the pool's spinning threads; else over
/// libtorch's intra-op thread count with the thread pool, the items taken in chunks as the workers come free; else on the
/// caller.
/// </summary>
internal static class KernelThreads
{
    /// <summary>
    /// Runs <paramref name="range"/>(from, to) over [0, <paramref name="items"/>) and returns when all ended: in chunks of
    /// one item, or, when <paramref name="shares"/> is set, in one contiguous share of the items a worker. Without
    /// <paramref name="threadPool"/> the work is split only within a <see cref="SpinPool"/> scope (for jobs too small to
    /// wait for a thread-pool worker).
    /// </summary>
    public static void For(long items, bool shares, Action<long, long> range, bool threadPool = true)
    {
        if (items <= 0) return;
        var workers = SpinPool.IsActive ? SpinPool.Workers : threadPool ? Math.Max(1, get_num_threads()) : 1;
        var chunk = shares ? (items + workers - 1) / workers : 1;
        var chunks = (items + chunk - 1) / chunk;
        if (chunks < 2 || workers < 2) range(0, items);
        else if (SpinPool.IsActive)
            SpinPool.For((int)chunks, c => range(c * chunk, Math.Min(items, (c + 1) * chunk)));
        else
        {
            var next = -1L;
            Parallel.For(0, (int)Math.Min(workers, chunks), new ParallelOptions { MaxDegreeOfParallelism = workers }, _ =>
            {
                for (long c; (c = Interlocked.Increment(ref next)) < chunks;)
                    range(c * chunk, Math.Min(items, (c + 1) * chunk));
            });
        }
    }
}
