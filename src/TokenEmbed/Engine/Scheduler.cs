using TokenEmbed.Pooling;

namespace TokenEmbed.Engine;

/// <summary>
/// One runner thread per model that batches requests from many callers: callers prepare their prompts on their own
/// threads and enqueue them; the runner takes everything queued when it becomes free (a round; under load it first waits a
/// 1 ms window; what arrives while a round runs forms the next one), sorts it longest-first into batches under the token budget, runs each batch and completes
/// every caller with its own pooled outputs. A round is closed when it starts, so a request never waits behind requests
/// that arrived after it beyond the current round. A request cancelled before its batch runs is removed; one cancelled during its batch has its result
/// dropped. A synchronous call that finds the engine idle and nothing queued runs its round on its own thread instead
/// (<see cref="TryRunInline"/>), with the same batching and checks. Disposing fails pending requests with
/// <see cref="ObjectDisposedException"/> and returns once the runner has stopped and no round runs.
/// </summary>
internal sealed class Scheduler : IDisposable
{
    private sealed class Item(TokenizedPrompt prompt, PoolingRequest request, int index, CancellationToken cancellation)
    {
        public TokenizedPrompt Prompt { get; } = prompt;
        public PoolingRequest Request { get; } = request;
        /// <summary>The prompt's index in its caller's list (errors name it).</summary>
        public int Index { get; } = index;
        public CancellationToken Cancellation { get; } = cancellation;
        public TaskCompletionSource<PoolingOutput> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>How long the runner waits for more requests, under load, once a round's first request is there.</summary>
    private static readonly TimeSpan CollectionWindow = TimeSpan.FromMilliseconds(1);

    private readonly EncodeEngine _engine;
    private int _lastRound;
    private readonly object _gate = new();
    private readonly List<Item> _pending = [];
    private readonly Thread _runner;
    private readonly ManualResetEventSlim _open = new(true);
    private bool _stopping;
    /// <summary>A round runs (on the runner, or inline on a caller's thread): at most one at a time.</summary>
    private bool _busy;

    /// <summary>Rounds, batches and requests run so far (for tests and metrics).</summary>
    public (long Rounds, long Batches, long Requests) Counts => (Interlocked.Read(ref _rounds), Interlocked.Read(ref _batches), Interlocked.Read(ref _requests));
    private long _rounds, _batches, _requests;

    /// <summary>Rounds run inline on a caller's thread so far (a part of <see cref="Counts"/>' rounds).</summary>
    public long InlineRounds => Interlocked.Read(ref _inlineRounds);
    private long _inlineRounds;

    /// <summary>Whether the runner is serving (false once disposed).</summary>
    public bool IsRunning => _runner.IsAlive && !Volatile.Read(ref _stopping);

    /// <summary>Requests waiting for a round.</summary>
    public int Queued
    {
        get { lock (_gate) return _pending.Count; }
    }

    /// <summary>Holds the runner before its next round (tests use it to queue requests deterministically); <see cref="Resume"/> releases it.</summary>
    internal void Pause() => _open.Reset();

    /// <summary>Releases a <see cref="Pause"/>.</summary>
    internal void Resume() => _open.Set();

    public Scheduler(EncodeEngine engine)
    {
        _engine = engine;
        _runner = new Thread(Run) { IsBackground = true, Name = "TokenEmbed scheduler" };
        _runner.Start();
    }

    /// <summary>
    /// Runs prepared prompts as one round on the calling thread when the engine is idle and nothing is queued, so that a lone
    /// synchronous call pays no hand-off to the runner and back (about 1 ms for a 16-token query on a 2-core VM). Returns null,
    /// running nothing, when a round is running or requests are waiting: the caller then queues with <see cref="SubmitAsync"/>
    /// and is batched with them. Requests that arrive meanwhile wait for this round, as they would behind the runner's.
    /// </summary>
    public PoolingOutput[]? TryRunInline(TokenizedPrompt[] prompts, PoolingRequest[] requests)
    {
        lock (_gate)
        {
            if (_stopping || _busy || _pending.Count > 0 || !_open.IsSet) return null;
            _busy = true;
        }
        var items = Items(prompts, requests, CancellationToken.None);
        Interlocked.Increment(ref _inlineRounds);
        try
        {
            RunRound([.. items]);
        }
        finally
        {
            lock (_gate)
            {
                _busy = false;
                Monitor.PulseAll(_gate);
            }
        }
        var outputs = new PoolingOutput[items.Length];
        for (var i = 0; i < items.Length; i++) outputs[i] = items[i].Completion.Task.GetAwaiter().GetResult();
        return outputs;
    }

    private static Item[] Items(TokenizedPrompt[] prompts, PoolingRequest[] requests, CancellationToken cancellationToken)
    {
        var items = new Item[prompts.Length];
        for (var i = 0; i < items.Length; i++) items[i] = new Item(prompts[i], requests[i], i, cancellationToken);
        return items;
    }

    /// <summary>Queues prepared prompts (prompt i pooled with <paramref name="requests"/>[i]) and completes with their outputs, in order.</summary>
    public async Task<PoolingOutput[]> SubmitAsync(TokenizedPrompt[] prompts, PoolingRequest[] requests, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var items = Items(prompts, requests, cancellationToken);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_stopping, typeof(Llm));
            _pending.AddRange(items);
            Monitor.Pulse(_gate);
        }
        using var registration = cancellationToken.Register(() =>
        {
            foreach (var item in items) item.Completion.TrySetCanceled(cancellationToken);
        });
        var outputs = new PoolingOutput[items.Length];
        for (var i = 0; i < items.Length; i++) outputs[i] = await items[i].Completion.Task.ConfigureAwait(false);
        return outputs;
    }

    private void Run()
    {
        while (true)
        {
            List<Item> round;
            lock (_gate)
            {
                while (_pending.Count == 0 && !_stopping) Monitor.Wait(_gate);
                if (_stopping) break;
            }
            _open.Wait();
            lock (_gate)
            {
                while (_busy && !_stopping) Monitor.Wait(_gate);   // an inline round on a caller's thread
                if (_stopping) break;
                // Under load (the last round had several requests, or several are queued) wait a short window so that
                // concurrent callers share the round; a lone request at low load runs at once (no added latency). What
                // arrives while a round runs forms the next one.
                if (_lastRound > 1 || _pending.Count > 1)
                {
                    var end = DateTime.UtcNow + CollectionWindow;
                    for (var wait = CollectionWindow; wait > TimeSpan.Zero && !_stopping; wait = end - DateTime.UtcNow) Monitor.Wait(_gate, wait);
                }
                round = [.. _pending];
                _lastRound = round.Count;
                _pending.Clear();
                _busy = true;
            }
            try
            {
                RunRound(round);
            }
            catch (Exception e)
            {
                // Never let the runner die: every request of the round gets the error.
                foreach (var item in round) item.Completion.TrySetException(e);
            }
            finally
            {
                lock (_gate)
                {
                    _busy = false;
                    Monitor.PulseAll(_gate);
                }
            }
        }
        List<Item> left;
        lock (_gate)
        {
            left = [.. _pending];
            _pending.Clear();
        }
        foreach (var item in left) item.Completion.TrySetException(new ObjectDisposedException(nameof(Llm)));
    }

    private void RunRound(List<Item> round)
    {
        var live = round.Where(i => !i.Cancellation.IsCancellationRequested && !i.Completion.Task.IsCompleted).ToArray();
        Interlocked.Increment(ref _rounds);
        foreach (var batch in _engine.Plan(live.Select(i => i.Prompt.Ids.Length).ToArray()))
        {
            var items = batch.Select(b => live[b]).Where(i => !i.Cancellation.IsCancellationRequested).ToArray();
            if (items.Length == 0) continue;
            PoolingOutput[] outputs;
            Interlocked.Increment(ref _batches);
            Interlocked.Add(ref _requests, items.Length);
            try
            {
                outputs = _engine.RunBatch(items.Select(i => i.Prompt).ToArray(), items.Select(i => i.Request).ToArray());
            }
            catch (Exception e)
            {
                foreach (var item in items) item.Completion.TrySetException(e);
                continue;
            }
            for (var i = 0; i < items.Length; i++)
            {
                try
                {
                    items[i].Completion.TrySetResult(EncodeEngine.CheckFinite(outputs[i], items[i].Index));
                }
                catch (Exception e)
                {
                    items[i].Completion.TrySetException(e);
                }
            }
        }
    }

    /// <summary>
    /// Stops the runner after the batch in flight and waits for an inline round to end; pending requests fail with
    /// <see cref="ObjectDisposedException"/>.
    /// </summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_stopping) return;
            _stopping = true;
            Monitor.PulseAll(_gate);
        }
        _open.Set();
        if (Thread.CurrentThread != _runner) _runner.Join();
        // An inline round on a caller's thread finishes before the model it runs on can be disposed.
        lock (_gate)
            while (_busy) Monitor.Wait(_gate);
        _open.Dispose();
    }
}
