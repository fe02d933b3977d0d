namespace TokenEmbed.Kernels;

/// <summary>
/// Two-way fork/join for kernels of a few tens of microseconds (a 16-token query's linear layers), where waking a thread-pool
/// or OpenMP thread per call would cost as much as the work. It works only inside <see cref="Enter"/> scopes, which the engine
/// opens around a small batch that libtorch runs on one thread (so no OpenMP team competes for the second core): a helper
/// thread is woken when the scope opens, spins for work while any scope is open, and sleeps as soon as none is (a spinning
/// helper next to OpenMP's spinning barriers stalled 2-thread forwards by tens of milliseconds in measurements). Work is a
/// count of items that the caller and the helper take one at a time; outside a scope, or when another thread's kernel holds
/// the helper, the caller runs them all.
/// </summary>
internal static class SpinPool
{
    private static readonly object Gate = new();
    private static readonly SemaphoreSlim Wake = new(0);
    private static Thread? _helper;
    private static Action<int>? _body;
    private static long _posted, _done;
    private static int _busy, _sleeping, _active, _count, _next;
    /// <summary>The ticket of the job the helper may still join; its negation once it joined; 0 once the caller closed it.</summary>
    private static long _open;
    private static Exception? _failure;

    /// <summary>Whether a second core is there to share the work.</summary>
    public static bool CanSplit { get; } = Environment.ProcessorCount > 1;

    /// <summary>Whether a scope is open (kernels may split their work).</summary>
    public static bool IsActive => Volatile.Read(ref _active) > 0;

    /// <summary>Until disposed, <see cref="For"/> shares work with the helper, which is woken now and spins meanwhile.</summary>
    public static Scope Enter()
    {
        if (!CanSplit) return default;
        EnsureHelper();
        Interlocked.Increment(ref _active);
        if (Volatile.Read(ref _sleeping) == 1) Wake.Release();
        return new Scope(true);
    }

    /// <summary>Ends an <see cref="Enter"/>.</summary>
    public readonly struct Scope(bool entered) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose()
        {
            if (entered) Interlocked.Decrement(ref _active);
        }
    }

    /// <summary>
    /// Runs <paramref name="body"/>(i) for i in [0, <paramref name="count"/>), the items taken one by one by this thread and
    /// the helper, and returns when all ended. If the helper has not started when this thread runs out of items, it is not
    /// waited for (a helper that lost its core to another pool's spinning thread costs at most the item it is running).
    /// </summary>
    public static void For(int count, Action<int> body)
    {
        if (count < 2 || !IsActive || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (var i = 0; i < count; i++) body(i);
            return;
        }
        try
        {
            _body = body;
            _count = count;
            _next = 0;
            _failure = null;
            // Open the job before posting it, so that a helper that sees the post finds it open (one caller at a time: _busy).
            var ticket = Volatile.Read(ref _posted) + 1;
            Interlocked.Exchange(ref _open, ticket);
            Interlocked.Exchange(ref _posted, ticket);
            if (Volatile.Read(ref _sleeping) == 1) Wake.Release();
            try
            {
                for (var i = Interlocked.Increment(ref _next) - 1; i < count; i = Interlocked.Increment(ref _next) - 1) body(i);
            }
            finally
            {
                // Close the job, even when an item failed here: a helper that had not joined will not; one that had is waited
                // for (its last item), so that no helper still runs this job's items when the next one is posted.
                Volatile.Write(ref _next, count);
                if (Interlocked.CompareExchange(ref _open, 0, ticket) != ticket)   // the helper joined this very job
                {
                    var spin = new SpinWait();
                    while (Volatile.Read(ref _done) != ticket) spin.SpinOnce(-1);
                }
            }
            if (_failure is { } e) throw new InvalidOperationException("A kernel's item failed on the helper thread.", e);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private static void EnsureHelper()
    {
        if (Volatile.Read(ref _helper) is not null) return;
        lock (Gate)
        {
            if (_helper is not null) return;
            var t = new Thread(Loop) { IsBackground = true, Name = "TokenEmbed kernel helper" };
            t.Start();
            Volatile.Write(ref _helper, t);
        }
    }

    private static void Loop()
    {
        var seen = 0L;
        while (true)
        {
            while (Volatile.Read(ref _posted) == seen)
            {
                if (Volatile.Read(ref _active) > 0)
                {
                    Thread.SpinWait(20);
                    continue;
                }
                // No scope open: sleep. A caller that posts or enters after the flag is set releases the semaphore; one that did
                // just before is seen by the checks below (a stale release only costs one more empty pass).
                Volatile.Write(ref _sleeping, 1);
                if (Volatile.Read(ref _posted) == seen && Volatile.Read(ref _active) == 0) Wake.Wait();
                Volatile.Write(ref _sleeping, 0);
            }
            seen = Volatile.Read(ref _posted);
            // Join job `seen` only while it is open: a stale or closed ticket fails here (the caller did that job alone), so
            // the helper never reports a ticket other than the one it worked on.
            if (Interlocked.CompareExchange(ref _open, -seen, seen) != seen) continue;
            try
            {
                var body = _body!;
                var count = _count;
                for (var i = Interlocked.Increment(ref _next) - 1; i < count; i = Interlocked.Increment(ref _next) - 1) body(i);
            }
            catch (Exception e)
            {
                _failure = e;
            }
            Volatile.Write(ref _done, seen);
        }
    }
}
