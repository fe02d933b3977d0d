using Microsoft.Extensions.Logging;
using TokenEmbed.Engine;
using TokenEmbed.Models;
using TokenEmbed.Pooling;
using TokenEmbed.Runtime;
using TokenEmbed.Scoring;
using TorchSharp;

namespace TokenEmbed;

/// <summary>
/// An in-process pooling model, mirroring vLLM's offline <c>LLM</c> for pooling: <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>
/// returns one vector per token (<see cref="PoolingTask.TokenEmbed"/>) or per prompt (<see cref="PoolingTask.Embed"/>),
/// and <see cref="Score(string, string, PoolingParams?)"/> returns late-interaction (MaxSim) scores.
/// </summary>
/// <remarks>
/// Thread-safe: share one instance per model. Calls from many threads (or <c>…Async</c> calls) are batched together by one
/// scheduler, each request pooled with its own <see cref="PoolingParams"/>; results equal encoding each request alone
/// (within float rounding of the different padding). Dispose it to free the weights: pending calls then fail with
/// <see cref="ObjectDisposedException"/>.
/// </remarks>
public sealed class Llm : IDisposable
{
    private readonly PoolingModel _model;
    private readonly InputProcessor _inputs;
    private readonly Scheduler _scheduler;
    private int _disposed;

    /// <summary>Loads a model.</summary>
    /// <param name="model">A local model folder (config.json, safetensors weights, tokenizer files).</param>
    /// <param name="options">Device, dtype and batching options.</param>
    /// <exception cref="ModelLoadException">
    /// The folder, a file, a weight or a config field is missing or invalid, whatever the component (config.json, modules.json,
    /// tokenizer files, weights, a native allocation failure); the message names the file, field or tensor, and the cause is
    /// kept as the inner exception.
    /// </exception>
    /// <exception cref="ArgumentOutOfRangeException">An <see cref="LlmOptions"/> value is out of range.</exception>
    public Llm(string model, LlmOptions? options = null)
        : this(model, options ?? new LlmOptions(), ResolveFolder(model, options ?? new LlmOptions(), null, CancellationToken.None).GetAwaiter().GetResult())
    {
    }

    private Llm(string model, LlmOptions options, string folder)
    {
        TorchRuntime.EnsureInitialized(options.TorchLibraryPath);
        if (options.NumThreads is { } n)
        {
            if (n <= 0) throw new ArgumentOutOfRangeException(nameof(options), n, "LlmOptions.NumThreads must be positive.");
            torch.set_num_threads(n);
        }
        Model = model;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        _model = PoolingModel.Load(folder, options);
        options.LoggerFactory?.CreateLogger("TokenEmbed").LogInformation("Loaded {Model} ({Architecture}) from {Folder} in {Milliseconds} ms on {Backend}",
            model, _model.Architecture.Name, folder, clock.ElapsedMilliseconds, _model.Matmul.Description);
        try
        {
            _inputs = new InputProcessor(_model);
            _scheduler = new Scheduler(new EncodeEngine(_model, options));
        }
        catch
        {
            _model.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Loads a model, downloading it first when <paramref name="model"/> is a Hugging Face hub id (<c>org/name</c>) that is not
    /// an existing folder: the <c>huggingface_hub</c> protocol and cache (shared with Python; <c>HF_ENDPOINT</c>, <c>HF_HUB_CACHE</c>
    /// / <c>HF_HOME</c>, <c>HF_TOKEN</c>, <c>HF_HUB_OFFLINE=1</c>), at <see cref="LlmOptions.Revision"/>, fetching only the files the
    /// library reads (configs, tokenizer, safetensors weights, module folders).
    /// </summary>
    /// <param name="model">A local model folder or a hub repository id.</param>
    /// <param name="options">Device, dtype, batching and revision options.</param>
    /// <param name="progress">Receives download progress per file, then the load stage.</param>
    /// <param name="cancellationToken">Cancels the download (a partial file is kept and resumed next time).</param>
    /// <exception cref="ModelLoadException">The folder or repository is missing or invalid; for the hub, the message says what to do (check the name, log in, accept the licence).</exception>
    public static async Task<Llm> LoadAsync(string model, LlmOptions? options = null, IProgress<LoadProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        options ??= new LlmOptions();
        var folder = await ResolveFolder(model, options, progress, cancellationToken).ConfigureAwait(false);
        cancellationToken.ThrowIfCancellationRequested();
        progress?.Report(new LoadProgress("load", null, 0, null));
        return await Task.Run(() => new Llm(model, options, folder), cancellationToken).ConfigureAwait(false);
    }

    private static Task<string> ResolveFolder(string model, LlmOptions options, IProgress<LoadProgress>? progress, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        if (Directory.Exists(model) || File.Exists(model) || !Hub.HubClient.LooksLikeRepoId(model)) return Task.FromResult(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Revision, nameof(options));
        return Hub.HubClient.SnapshotAsync(model, options.Revision, Hub.HubSettings.FromEnvironment(), progress, ct,
            options.LoggerFactory?.CreateLogger("TokenEmbed.Hub"));
    }

    /// <summary>The model folder or hub id this instance was loaded from.</summary>
    public string Model { get; }

    /// <summary>The architecture that was loaded (config.json <c>architectures</c>).</summary>
    public string Architecture => _model.Architecture.Name;

    /// <summary>
    /// The size of TokenEmbed vectors before any Matryoshka cut (the projection size for ColBERT models). Embed vectors
    /// have the same size, except for BGE-M3, whose Embed vector is the backbone's hidden state.
    /// </summary>
    public int Dimension => _model.Pooler.Dimension(PoolingTask.TokenEmbed);

    /// <summary>The most tokens a prompt may have.</summary>
    public int MaxModelLength => _model.MaxModelLength;

    /// <summary>The device the model runs on, e.g. <c>cpu</c> or <c>cuda:0</c>.</summary>
    public string Device => _model.Device.ToString();

    /// <summary>
    /// What runs the model: device, compute dtype and, on the CPU in float32, the matmul path with its self-test figures and the
    /// CPU (e.g. <c>cpu, float32, matmul: oneDNN (self-test max relative error 2.0E-007, …; AMD EPYC (AuthenticAMD; AVX-512))</c>).
    /// </summary>
    public string Backend => _model.Matmul.Description;

    /// <summary>Whether <see cref="Score(string, string, PoolingParams?)"/> uses late interaction (MaxSim) rather than cosine similarity.</summary>
    public bool IsLateInteraction => _model.Pooler.IsLateInteraction;

    /// <summary>Token ids for <paramref name="text"/>, special tokens included, as <see cref="Encode(Prompt, PoolingTask, PoolingParams?)"/> sees them (before any truncation; no length check).</summary>
    /// <param name="text">The text.</param>
    public IReadOnlyList<int> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ThrowIfDisposed();
        return _inputs.RequireTokenizer().Encode(text, addSpecialTokens: true);
    }

    // ---------------------------------------------------------------- Encode

    /// <summary>Encodes one prompt.</summary>
    /// <param name="prompt">A text, token-id or image prompt.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <exception cref="PromptTooLongException">A prompt is longer than <see cref="MaxModelLength"/> and no truncation was asked for.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id outside the vocabulary, or a <see cref="PoolingParams"/> value out of range (the message names the prompt index).</exception>
    /// <exception cref="ArgumentException">A prompt is null or has no tokens, or its images do not match its placeholders.</exception>
    /// <exception cref="InvalidOperationException">
    /// A text prompt was given to a model folder without tokenizer files, or the model produced NaN or infinity for a prompt.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public IReadOnlyList<PoolingRequestOutput> Encode(Prompt prompt, PoolingTask poolingTask, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return Encode([prompt], poolingTask, poolingParams);
    }

    /// <summary>Encodes text prompts, batched; outputs come back in input order.</summary>
    /// <param name="prompts">The texts.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <exception cref="PromptTooLongException">A prompt is longer than <see cref="MaxModelLength"/> and no truncation was asked for.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id outside the vocabulary, or a <see cref="PoolingParams"/> value out of range (the message names the prompt index).</exception>
    /// <exception cref="ArgumentException">A prompt is null or has no tokens, or its images do not match its placeholders.</exception>
    /// <exception cref="InvalidOperationException">
    /// A text prompt was given to a model folder without tokenizer files, or the model produced NaN or infinity for a prompt.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public IReadOnlyList<PoolingRequestOutput> Encode(IReadOnlyList<string> prompts, PoolingTask poolingTask, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        return Encode(Texts(prompts, nameof(prompts)), poolingTask, poolingParams);
    }

    /// <summary>Encodes prompts, batched; outputs come back in input order.</summary>
    /// <param name="prompts">Text, token-id or image prompts.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <exception cref="PromptTooLongException">A prompt is longer than <see cref="MaxModelLength"/> and no truncation was asked for.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id outside the vocabulary, or a <see cref="PoolingParams"/> value out of range (the message names the prompt index).</exception>
    /// <exception cref="ArgumentException">A prompt is null or has no tokens, or its images do not match its placeholders.</exception>
    /// <exception cref="InvalidOperationException">
    /// A text prompt was given to a model folder without tokenizer files, or the model produced NaN or infinity for a prompt.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public IReadOnlyList<PoolingRequestOutput> Encode(IReadOnlyList<Prompt> prompts, PoolingTask poolingTask, PoolingParams? poolingParams = null)
    {
        var (prepared, requests) = Prepare(prompts, poolingTask, poolingParams);
        if (prepared.Length == 0) return [];
        // When the engine is idle the forward runs right here; otherwise the call is batched with the others.
        var outs = _scheduler.TryRunInline(prepared, requests) ?? Wait(_scheduler.SubmitAsync(prepared, requests, CancellationToken.None));
        return Results(prompts, prepared, outs);
    }

    /// <summary>Encodes one prompt, batched with concurrent calls.</summary>
    /// <param name="prompt">A text, token-id or image prompt.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="PromptTooLongException">A prompt is longer than <see cref="MaxModelLength"/> and no truncation was asked for.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id outside the vocabulary, or a <see cref="PoolingParams"/> value out of range (the message names the prompt index).</exception>
    /// <exception cref="ArgumentException">A prompt is null or has no tokens, or its images do not match its placeholders.</exception>
    /// <exception cref="InvalidOperationException">
    /// A text prompt was given to a model folder without tokenizer files, or the model produced NaN or infinity for a prompt.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<PoolingRequestOutput>> EncodeAsync(Prompt prompt, PoolingTask poolingTask, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return EncodeAsync([prompt], poolingTask, poolingParams, cancellationToken);
    }

    /// <summary>Encodes text prompts, batched with concurrent calls; outputs come back in input order.</summary>
    /// <param name="prompts">The texts.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="PromptTooLongException">A prompt is longer than <see cref="MaxModelLength"/> and no truncation was asked for.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id outside the vocabulary, or a <see cref="PoolingParams"/> value out of range (the message names the prompt index).</exception>
    /// <exception cref="ArgumentException">A prompt is null or has no tokens, or its images do not match its placeholders.</exception>
    /// <exception cref="InvalidOperationException">
    /// A text prompt was given to a model folder without tokenizer files, or the model produced NaN or infinity for a prompt.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<PoolingRequestOutput>> EncodeAsync(IReadOnlyList<string> prompts, PoolingTask poolingTask, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        return EncodeAsync(Texts(prompts, nameof(prompts)), poolingTask, poolingParams, cancellationToken);
    }

    /// <summary>Encodes prompts, batched with concurrent calls; outputs come back in input order.</summary>
    /// <param name="prompts">Text, token-id or image prompts.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="PromptTooLongException">A prompt is longer than <see cref="MaxModelLength"/> and no truncation was asked for.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id outside the vocabulary, or a <see cref="PoolingParams"/> value out of range (the message names the prompt index).</exception>
    /// <exception cref="ArgumentException">A prompt is null or has no tokens, or its images do not match its placeholders.</exception>
    /// <exception cref="InvalidOperationException">
    /// A text prompt was given to a model folder without tokenizer files, or the model produced NaN or infinity for a prompt.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public async Task<IReadOnlyList<PoolingRequestOutput>> EncodeAsync(IReadOnlyList<Prompt> prompts, PoolingTask poolingTask, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        var (prepared, requests) = Prepare(prompts, poolingTask, poolingParams);
        if (prepared.Length == 0) return [];
        var outs = await _scheduler.SubmitAsync(prepared, requests, cancellationToken).ConfigureAwait(false);
        return Results(prompts, prepared, outs);
    }

    /// <summary>Validation and tokenization, on the caller's thread: only the forward is queued.</summary>
    private (TokenizedPrompt[] Prepared, PoolingRequest[] Requests) Prepare(IReadOnlyList<Prompt> prompts, PoolingTask poolingTask, PoolingParams? poolingParams)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        ThrowIfDisposed();
        var request = PoolingRequest.Resolve(poolingTask, poolingParams, _model.Pooler,
            poolingParams?.InputType == InputType.Document ? _inputs.DocumentPooling : null);
        var prepared = _inputs.Process(prompts, poolingParams);
        return (prepared, Enumerable.Repeat(request, prepared.Length).ToArray());
    }

    private static PoolingRequestOutput[] Results(IReadOnlyList<Prompt> prompts, TokenizedPrompt[] prepared, PoolingOutput[] outs)
    {
        var result = new PoolingRequestOutput[prompts.Count];
        for (var i = 0; i < result.Length; i++) result[i] = new PoolingRequestOutput(prompts[i].Text, prepared[i].Ids, outs[i]);
        return result;
    }

    /// <summary>Prompts per step of a progress-reporting or streaming encode: enough for full batches, small enough to report often.</summary>
    private const int StepPrompts = 256;

    /// <summary>
    /// Encodes prompts in steps of 256, reporting after each step (prompts done / total, tokens/s); outputs come back in input
    /// order, as from <see cref="EncodeAsync(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?, CancellationToken)"/>.
    /// </summary>
    /// <param name="prompts">Text, token-id or image prompts.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <param name="progress">Receives an <see cref="EncodeProgress"/> after each step.</param>
    /// <param name="cancellationToken">Cancels the remaining steps.</param>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async Task<IReadOnlyList<PoolingRequestOutput>> EncodeAsync(IReadOnlyList<Prompt> prompts, PoolingTask poolingTask, PoolingParams? poolingParams,
        IProgress<EncodeProgress>? progress, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        var result = new List<PoolingRequestOutput>(prompts.Count);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        long tokens = 0;
        for (var start = 0; start < prompts.Count; start += StepPrompts)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var step = prompts.Skip(start).Take(StepPrompts).ToArray();
            var outs = await EncodeAsync(step, poolingTask, poolingParams, cancellationToken).ConfigureAwait(false);
            result.AddRange(outs);
            tokens += outs.Sum(o => (long)o.PromptTokenIds.Count);
            progress?.Report(new EncodeProgress(result.Count, prompts.Count, tokens, tokens / Math.Max(clock.Elapsed.TotalSeconds, 1e-9)));
        }
        return result;
    }

    /// <summary>
    /// Encodes a stream of prompts that need not fit in memory, yielding outputs in input order: prompts are read in steps of
    /// 256, and the next step is encoded while the caller consumes the previous one's outputs.
    /// </summary>
    /// <param name="prompts">The prompts, read once.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <param name="cancellationToken">Stops reading and encoding.</param>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    public async IAsyncEnumerable<PoolingRequestOutput> EncodeStreamAsync(IAsyncEnumerable<Prompt> prompts, PoolingTask poolingTask, PoolingParams? poolingParams = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        Task<IReadOnlyList<PoolingRequestOutput>>? pending = null;
        var step = new List<Prompt>(StepPrompts);
        await foreach (var prompt in prompts.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            step.Add(prompt);
            if (step.Count < StepPrompts) continue;
            var next = EncodeAsync(step.ToArray(), poolingTask, poolingParams, cancellationToken);
            step.Clear();
            if (pending is not null)
                foreach (var o in await pending.ConfigureAwait(false)) yield return o;
            pending = next;
        }
        var last = step.Count > 0 ? EncodeAsync(step.ToArray(), poolingTask, poolingParams, cancellationToken) : null;
        if (pending is not null)
            foreach (var o in await pending.ConfigureAwait(false)) yield return o;
        if (last is not null)
            foreach (var o in await last.ConfigureAwait(false)) yield return o;
    }

    // ---------------------------------------------------------------- Score

    /// <summary>Scores one pair (1:1).</summary>
    /// <param name="text1">The query.</param>
    /// <param name="text2">The document.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(string text1, string text2, PoolingParams? poolingParams = null) =>
        Wait(ScoreAsync(text1, text2, poolingParams));

    /// <summary>Scores one query against many documents (1:N).</summary>
    /// <param name="text1">The query.</param>
    /// <param name="text2">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(string text1, IReadOnlyList<string> text2, PoolingParams? poolingParams = null) =>
        Wait(ScoreAsync(text1, text2, poolingParams));

    /// <summary>Scores pairs zipped from two lists of equal length (N:N); a one-element <paramref name="text1"/> is scored against every document.</summary>
    /// <param name="text1">The queries.</param>
    /// <param name="text2">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(IReadOnlyList<string> text1, IReadOnlyList<string> text2, PoolingParams? poolingParams = null) =>
        Wait(ScoreAsync(text1, text2, poolingParams));

    /// <summary>Scores one pair of prompts (1:1): text, token ids, images.</summary>
    /// <param name="query">The query.</param>
    /// <param name="document">The document.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(Prompt query, Prompt document, PoolingParams? poolingParams = null) =>
        Wait(ScoreAsync(query, document, poolingParams));

    /// <summary>Scores one query prompt against many document prompts (1:N).</summary>
    /// <param name="query">The query.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(Prompt query, IReadOnlyList<Prompt> documents, PoolingParams? poolingParams = null) =>
        Wait(ScoreAsync(query, documents, poolingParams));

    /// <summary>Scores prompt pairs zipped from two lists of equal length (N:N); a one-element <paramref name="queries"/> is scored against every document.</summary>
    /// <param name="queries">The queries.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(IReadOnlyList<Prompt> queries, IReadOnlyList<Prompt> documents, PoolingParams? poolingParams = null) =>
        Wait(ScoreAsync(queries, documents, poolingParams));

    /// <summary>Scores one pair (1:1), batched with concurrent calls.</summary>
    /// <param name="query">The query.</param>
    /// <param name="document">The document.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<ScoringRequestOutput>> ScoreAsync(string query, string document, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(document);
        return ScoreCoreAsync([query], [document], poolingParams, cancellationToken);
    }

    /// <summary>Scores one query against many documents (1:N), batched with concurrent calls.</summary>
    /// <param name="query">The query.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<ScoringRequestOutput>> ScoreAsync(string query, IReadOnlyList<string> documents, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(documents);
        return ScoreCoreAsync([query], Texts(documents, nameof(documents)), poolingParams, cancellationToken);
    }

    /// <summary>Scores zipped pairs (N:N), batched with concurrent calls; a one-element <paramref name="queries"/> is scored against every document.</summary>
    /// <param name="queries">The queries.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<ScoringRequestOutput>> ScoreAsync(IReadOnlyList<string> queries, IReadOnlyList<string> documents, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(documents);
        if (queries.Count != 1 && queries.Count != documents.Count)
            throw new ArgumentException($"Score needs text1 of length 1 or of the same length as text2; got {queries.Count} and {documents.Count}.", nameof(queries));
        return ScoreCoreAsync(Texts(queries, nameof(queries)), Texts(documents, nameof(documents)), poolingParams, cancellationToken);
    }

    /// <summary>Scores one pair of prompts (1:1), batched with concurrent calls.</summary>
    /// <param name="query">The query.</param>
    /// <param name="document">The document.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<ScoringRequestOutput>> ScoreAsync(Prompt query, Prompt document, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(document);
        return ScoreCoreAsync([query], [document], poolingParams, cancellationToken);
    }

    /// <summary>Scores one query prompt against many document prompts (1:N), batched with concurrent calls.</summary>
    /// <param name="query">The query.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<ScoringRequestOutput>> ScoreAsync(Prompt query, IReadOnlyList<Prompt> documents, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(documents);
        return ScoreCoreAsync([query], documents, poolingParams, cancellationToken);
    }

    /// <summary>Scores zipped prompt pairs (N:N), batched with concurrent calls; a one-element <paramref name="queries"/> is scored against every document.</summary>
    /// <param name="queries">The queries.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <param name="cancellationToken">Cancels the request.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled (before the batch ran, the request is removed; during it, the result is dropped).</exception>
    public Task<IReadOnlyList<ScoringRequestOutput>> ScoreAsync(IReadOnlyList<Prompt> queries, IReadOnlyList<Prompt> documents, PoolingParams? poolingParams = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(documents);
        if (queries.Count != 1 && queries.Count != documents.Count)
            throw new ArgumentException($"Score needs one query or as many queries as documents; got {queries.Count} and {documents.Count}.", nameof(queries));
        return ScoreCoreAsync(queries, documents, poolingParams, cancellationToken);
    }

    private static Prompt[] Texts(IReadOnlyList<string> texts, string name) =>
        texts.Select((t, i) => t is null ? throw new ArgumentNullException(name, $"Text {i} is null.") : Prompt.FromText(t)).ToArray();

    private async Task<IReadOnlyList<ScoringRequestOutput>> ScoreCoreAsync(IReadOnlyList<Prompt> queries, IReadOnlyList<Prompt> documents, PoolingParams? p, CancellationToken cancellationToken)
    {
        if (documents.Count == 0) return [];
        var lateInteraction = _model.Pooler.IsLateInteraction;
        var task = lateInteraction ? PoolingTask.TokenEmbed : PoolingTask.Embed;
        IReadOnlyList<PoolingRequestOutput> encoded;
        switch (p?.InputType)
        {
            case null or InputType.Plain:
                encoded = await EncodeAsync(queries.Concat(documents).ToArray(), task, p, cancellationToken).ConfigureAwait(false);
                break;
            case InputType.Query:
                // PyLate scoring: the first side encoded as queries, the second as documents (both in flight together).
                var asQueries = EncodeAsync(queries, task, With(p, InputType.Query), cancellationToken);
                var asDocuments = EncodeAsync(documents, task, With(p, InputType.Document), cancellationToken);
                encoded = [.. await asQueries.ConfigureAwait(false), .. await asDocuments.ConfigureAwait(false)];
                break;
            default:
                throw new ArgumentException("For Score, PoolingParams.InputType Query means 'the first side are queries, the second documents'; Document alone is not meaningful.", nameof(p));
        }
        var scores = new ScoringRequestOutput[documents.Count];
        for (var i = 0; i < documents.Count; i++)
        {
            var q = encoded[queries.Count == 1 ? 0 : i].Outputs;
            var d = encoded[queries.Count + i].Outputs;
            var s = lateInteraction ? MaxSim.Score(q, d) : Cosine(q.Data, d.Data);
            scores[i] = new ScoringRequestOutput(new ScoringOutput(s));
        }
        return scores;
    }

    private static PoolingParams With(PoolingParams p, InputType type) =>
        new()
        {
            Dimensions = p.Dimensions, Normalize = p.Normalize, TruncatePromptTokens = p.TruncatePromptTokens, InputType = type,
            // Token pooling applies to the documents' side only (PyLate pools documents, never queries).
            PoolFactor = type == InputType.Document ? p.PoolFactor : null, ProtectedTokens = type == InputType.Document ? p.ProtectedTokens : null,
        };

    private static float Cosine(float[] a, float[] b)
    {
        var dot = MaxSim.Dot(a, b);
        var na = MathF.Sqrt(MaxSim.Dot(a, a));
        var nb = MathF.Sqrt(MaxSim.Dot(b, b));
        return dot / MathF.Max(na * nb, 1e-8f);
    }

    /// <summary>The scheduler (tests pause it to queue requests deterministically; the server reads its counts).</summary>
    internal Scheduler Scheduler => _scheduler;

    /// <summary>Blocks on a task of this instance, rethrowing its exception as thrown (the scheduler runs on its own thread, so this cannot deadlock).</summary>
    private static T Wait<T>(Task<T> task) => task.GetAwaiter().GetResult();

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

    /// <summary>Stops the scheduler (pending calls fail with <see cref="ObjectDisposedException"/>) and frees the model's weights.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0) return;
        _scheduler.Dispose();
        _model.Dispose();
    }
}
