using System.Runtime.CompilerServices;

namespace TokenEmbed.Kernels;

/// <summary>
/// Fork/join over a few cores for kernels of tens of microseconds to milliseconds (a 16-token query's linear layers, the
/// products and attention of a forward that runs on TokenEmbed's kernels), where waking a thread-pool or OpenMP thread per
/// call costs as much as a small job (measured 0.77 ms on average for the thread pool's second worker to join a MiniLM
/// product here, 11% of it). It works only inside <see cref="Enter"/> scopes, which the engine opens around a forward that
/// libtorch runs on one thread (so no OpenMP team competes for the cores): helper threads are woken when the scope opens,
/// spin for work while any scope is open, and sleep as soon as none is (a spinning helper next to OpenMP's spinning
/// barriers stalled 2-thread forwards by tens of milliseconds in measurements). Work is a count of items that the caller and
/// the helpers take one at a time; outside a scope, or when another thread's kernel holds the helpers, the caller runs them
/// all.
/// </summary>
internal static class SpinPool
{
    private const int JoinedBits = 16;
    private const long JoinedMask = (1L << JoinedBits) - 1;
    private static readonly object Gate = new();
    /// <summary>The helpers and, for each, the semaphore it sleeps on and whether it does (1) or not (0).</summary>
    private static readonly List<(Thread Thread, SemaphoreSlim Wake, StrongBox<int> Sleeping)> Helpers = new();
    private static Action<int>? _body;
    private static long _posted;
    private static int _busy, _active, _count, _next, _finished, _workers = 1;
    /// <summary>The job helpers may still join: its ticket shifted left by 16 plus the helpers that joined; 0 once closed.</summary>
    private static long _open;
    private static Exception? _failure;

    /// <summary>Whether a second core is there to share the work.</summary>
    public static bool CanSplit { get; } = Environment.ProcessorCount > 1;

    /// <summary>Whether a scope is open (kernels may split their work).</summary>
    public static bool IsActive => Volatile.Read(ref _active) > 0;

    /// <summary>The threads (the caller included) a job is shared by within the open scopes; 1 outside them.</summary>
    public static int Workers => IsActive ? Volatile.Read(ref _workers) : 1;

    /// <summary>
    /// Until disposed, <see cref="For"/> shares work among <paramref name="workers"/> threads (the caller and helpers; callers
    /// ask for at most one a core), which are woken now and spin meanwhile. Scopes opened together share the largest count
    /// asked for.
    /// </summary>
    public static Scope Enter(int workers = 2)
    {
        if (!CanSplit || workers < 2) return default;
        EnsureHelpers(workers - 1);
        lock (Gate)
        {
            if (Volatile.Read(ref _active) == 0 || workers > _workers) Volatile.Write(ref _workers, workers);
            Interlocked.Increment(ref _active);
        }
        WakeWanted();
        return new Scope(true);
    }

    /// <summary>Ends an <see cref="Enter"/>.</summary>
    public readonly struct Scope(bool entered) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose()
        {
            if (!entered) return;
            lock (Gate)
            {
                if (Interlocked.Decrement(ref _active) == 0)
                    Volatile.Write(ref _lingerUntil, System.Diagnostics.Stopwatch.GetTimestamp() + LingerTicks);
            }
        }
    }

    /// <summary>
    /// How long the helpers keep spinning after the last scope closed, so that the next short forward finds them awake: waking
    /// a sleeping helper took 1–2 ms here (a virtual machine's idle core), a third of a 16-token query. OpenMP's and ONNX
    /// Runtime's pool threads spin after their work for a few milliseconds the same way.
    /// </summary>
    private static readonly long LingerTicks = System.Diagnostics.Stopwatch.Frequency * 5 / 1000;

    private static long _lingerUntil;

    /// <summary>Ends the helpers' spinning after the last scope now (before work on libtorch's OpenMP threads, which a spinning helper would slow).</summary>
    public static void StopLingering() => Volatile.Write(ref _lingerUntil, 0);

    /// <summary>Whether helper <paramref name="index"/> should spin: a scope wants it, or one that did closed moments ago.</summary>
    private static bool Wanted(int index) =>
        index + 1 < Volatile.Read(ref _workers)
        && (Volatile.Read(ref _active) > 0 || System.Diagnostics.Stopwatch.GetTimestamp() < Volatile.Read(ref _lingerUntil));

    /// <summary>
    /// Runs <paramref name="body"/>(i) for i in [0, <paramref name="count"/>), the items taken one by one by this thread and
    /// the helpers, and returns when all ended. Helpers that have not joined when this thread runs out of items are not waited
    /// for (a helper that lost its core to another thread costs at most the item it is running).
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
            _finished = 0;
            _failure = null;
            // Open the job before posting it, so that a helper that sees the post finds it open (one caller at a time: _busy).
            var ticket = Volatile.Read(ref _posted) + 1;
            Interlocked.Exchange(ref _open, ticket << JoinedBits);
            Interlocked.Exchange(ref _posted, ticket);   // the helpers a scope wants spin meanwhile (Enter woke them)
            try
            {
                for (var i = Interlocked.Increment(ref _next) - 1; i < count; i = Interlocked.Increment(ref _next) - 1) body(i);
            }
            finally
            {
                // Close the job, even when an item failed here: a helper that had not joined will not; those that had are
                // waited for (their last item), so that no helper still runs this job's items when the next one is posted.
                Volatile.Write(ref _next, count);
                var joined = (int)(Interlocked.Exchange(ref _open, 0) & JoinedMask);
                var spin = new SpinWait();
                while (Volatile.Read(ref _finished) != joined) spin.SpinOnce(-1);
            }
            if (_failure is { } e) throw new InvalidOperationException("A kernel's item failed on a helper thread.", e);
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    /// <summary>
    /// Wakes the sleeping helpers the open scopes want. A helper that goes to sleep marks itself first and then checks whether it
    /// is wanted, so either it sees the new scope or this sees its mark (a stale release only costs it one more empty pass).
    /// </summary>
    private static void WakeWanted()
    {
        (Thread, SemaphoreSlim Wake, StrongBox<int> Sleeping)[] helpers;
        lock (Gate) helpers = Helpers.ToArray();
        var wanted = Math.Min(helpers.Length, Volatile.Read(ref _workers) - 1);
        for (var i = 0; i < wanted; i++)
            if (Interlocked.Exchange(ref helpers[i].Sleeping.Value, 0) == 1) helpers[i].Wake.Release();
    }

    private static void EnsureHelpers(int helpers)
    {
        if (Volatile.Read(ref _started) >= helpers) return;
        lock (Gate)
        {
            while (Helpers.Count < helpers)
            {
                var index = Helpers.Count;
                var wake = new SemaphoreSlim(0);
                var sleeping = new StrongBox<int>();
                var t = new Thread(() => Loop(index, wake, sleeping)) { IsBackground = true, Name = $"TokenEmbed kernel helper {index + 1}" };
                Helpers.Add((t, wake, sleeping));
                t.Start();
            }
            Volatile.Write(ref _started, Helpers.Count);
        }
    }

    private static int _started;

    /// <summary>Helper <paramref name="index"/> (0-based) works while a scope wants more than index + 1 threads.</summary>
    private static void Loop(int index, SemaphoreSlim wake, StrongBox<int> sleeping)
    {
        var seen = 0L;
        while (true)
        {
            while (Volatile.Read(ref _posted) == seen)
            {
                if (Wanted(index))
                {
                    Thread.SpinWait(20);
                    continue;
                }
                // Not wanted: sleep until a scope that wants this helper opens (WakeWanted).
                Interlocked.Exchange(ref sleeping.Value, 1);
                if (Volatile.Read(ref _posted) == seen && !Wanted(index)) wake.Wait();
                Interlocked.Exchange(ref sleeping.Value, 0);
            }
            seen = Volatile.Read(ref _posted);
            if (!Join(seen, index)) continue;
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
            Interlocked.Increment(ref _finished);
        }
    }

    /// <summary>
    /// Joins job <paramref name="ticket"/> only while it is open and wants another helper: a stale or closed ticket fails
    /// here (the caller did that job without this helper), so a helper only ever reports the job it worked on.
    /// </summary>
    private static bool Join(long ticket, int index)
    {
        while (true)
        {
            var open = Volatile.Read(ref _open);
            if (open >> JoinedBits != ticket || (open & JoinedMask) >= Volatile.Read(ref _workers) - 1 || index + 1 >= Volatile.Read(ref _workers))
                return false;
            if (Interlocked.CompareExchange(ref _open, open + 1, open) == open) return true;
        }
    }
}
