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
/// Calls on one instance are serialized; use one instance per model and share it. Dispose it to free the weights.
/// </remarks>
public sealed class Llm : IDisposable
{
    private readonly PoolingModel _model;
    private readonly InputProcessor _inputs;
    private readonly EncodeEngine _engine;
    private readonly object _gate = new();
    private bool _disposed;

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
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(model);
        options ??= new LlmOptions();
        TorchRuntime.EnsureInitialized(options.TorchLibraryPath);
        if (options.NumThreads is { } n)
        {
            if (n <= 0) throw new ArgumentOutOfRangeException(nameof(options), n, "LlmOptions.NumThreads must be positive.");
            torch.set_num_threads(n);
        }
        Model = model;
        _model = PoolingModel.Load(model, options);
        try
        {
            _inputs = new InputProcessor(_model);
            _engine = new EncodeEngine(_model, options);
        }
        catch
        {
            _model.Dispose();
            throw;
        }
    }

    /// <summary>The model folder this instance was loaded from.</summary>
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

    /// <summary>Whether <see cref="Score(string, string, PoolingParams?)"/> uses late interaction (MaxSim) rather than cosine similarity.</summary>
    public bool IsLateInteraction => _model.Pooler.IsLateInteraction;

    /// <summary>Token ids for <paramref name="text"/>, special tokens included, as <see cref="Encode(Prompt, PoolingTask, PoolingParams?)"/> sees them (before any truncation; no length check).</summary>
    /// <param name="text">The text.</param>
    public IReadOnlyList<int> Tokenize(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return _inputs.RequireTokenizer().Encode(text, addSpecialTokens: true);
        }
    }

    /// <summary>Encodes one prompt.</summary>
    /// <param name="prompt">A text or token-id prompt.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<PoolingRequestOutput> Encode(Prompt prompt, PoolingTask poolingTask, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        return Encode([prompt], poolingTask, poolingParams);
    }

    /// <summary>Encodes text prompts, batched; outputs come back in input order.</summary>
    /// <param name="prompts">The texts.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<PoolingRequestOutput> Encode(IReadOnlyList<string> prompts, PoolingTask poolingTask, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        return Encode(prompts.Select((p, i) => p is null ? throw new ArgumentNullException(nameof(prompts), $"Prompt {i} is null.") : Prompt.FromText(p)).ToArray(),
            poolingTask, poolingParams);
    }

    /// <summary>Encodes prompts, batched; outputs come back in input order.</summary>
    /// <param name="prompts">Text or token-id prompts.</param>
    /// <param name="poolingTask">Embed or TokenEmbed.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation.</param>
    /// <exception cref="PromptTooLongException">A prompt is longer than <see cref="MaxModelLength"/> and no truncation was asked for.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A token id outside the vocabulary, or a <see cref="PoolingParams"/> value out of range (the message names the prompt index).</exception>
    /// <exception cref="ArgumentException">A prompt is null or has no tokens.</exception>
    /// <exception cref="InvalidOperationException">
    /// A text prompt was given to a model folder without tokenizer files, or the model produced NaN or infinity for a prompt.
    /// </exception>
    /// <exception cref="ObjectDisposedException">The instance was disposed.</exception>
    public IReadOnlyList<PoolingRequestOutput> Encode(IReadOnlyList<Prompt> prompts, PoolingTask poolingTask, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var request = PoolingRequest.Resolve(poolingTask, poolingParams, _model.Pooler);
            var ids = _inputs.Process(prompts, poolingParams);
            var outs = _engine.Run(ids, request);
            var result = new PoolingRequestOutput[prompts.Count];
            for (var i = 0; i < result.Length; i++) result[i] = new PoolingRequestOutput(prompts[i].Text, ids[i].Ids, outs[i]);
            return result;
        }
    }

    /// <summary>Scores one pair (1:1).</summary>
    /// <param name="text1">The query.</param>
    /// <param name="text2">The document.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(string text1, string text2, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(text1);
        ArgumentNullException.ThrowIfNull(text2);
        return ScoreCore([text1], [text2], poolingParams);
    }

    /// <summary>Scores one query against many documents (1:N).</summary>
    /// <param name="text1">The query.</param>
    /// <param name="text2">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(string text1, IReadOnlyList<string> text2, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(text1);
        ArgumentNullException.ThrowIfNull(text2);
        return ScoreCore([text1], Texts(text2, nameof(text2)), poolingParams);
    }

    /// <summary>Scores pairs zipped from two lists of equal length (N:N); a one-element <paramref name="text1"/> is scored against every document.</summary>
    /// <param name="text1">The queries.</param>
    /// <param name="text2">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(IReadOnlyList<string> text1, IReadOnlyList<string> text2, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(text1);
        ArgumentNullException.ThrowIfNull(text2);
        if (text1.Count != 1 && text1.Count != text2.Count)
            throw new ArgumentException($"Score needs text1 of length 1 or of the same length as text2; got {text1.Count} and {text2.Count}.", nameof(text1));
        return ScoreCore(Texts(text1, nameof(text1)), Texts(text2, nameof(text2)), poolingParams);
    }

    /// <summary>Scores one pair of prompts (1:1): text, token ids, or both mixed.</summary>
    /// <param name="query">The query.</param>
    /// <param name="document">The document.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(Prompt query, Prompt document, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(document);
        return ScoreCore([query], [document], poolingParams);
    }

    /// <summary>Scores one query prompt against many document prompts (1:N).</summary>
    /// <param name="query">The query.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(Prompt query, IReadOnlyList<Prompt> documents, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        ArgumentNullException.ThrowIfNull(documents);
        return ScoreCore([query], documents, poolingParams);
    }

    /// <summary>Scores prompt pairs zipped from two lists of equal length (N:N); a one-element <paramref name="queries"/> is scored against every document.</summary>
    /// <param name="queries">The queries.</param>
    /// <param name="documents">The documents.</param>
    /// <param name="poolingParams">Dimensions, normalization and truncation for both sides.</param>
    /// <exception cref="ArgumentException">A null or empty prompt, or N:N lists of different lengths; otherwise the exceptions of <see cref="Encode(IReadOnlyList{Prompt}, PoolingTask, PoolingParams?)"/>.</exception>
    public IReadOnlyList<ScoringRequestOutput> Score(IReadOnlyList<Prompt> queries, IReadOnlyList<Prompt> documents, PoolingParams? poolingParams = null)
    {
        ArgumentNullException.ThrowIfNull(queries);
        ArgumentNullException.ThrowIfNull(documents);
        if (queries.Count != 1 && queries.Count != documents.Count)
            throw new ArgumentException($"Score needs one query or as many queries as documents; got {queries.Count} and {documents.Count}.", nameof(queries));
        return ScoreCore(queries, documents, poolingParams);
    }

    private static Prompt[] Texts(IReadOnlyList<string> texts, string name) =>
        texts.Select((t, i) => t is null ? throw new ArgumentNullException(name, $"Text {i} is null.") : Prompt.FromText(t)).ToArray();

    private IReadOnlyList<ScoringRequestOutput> ScoreCore(IReadOnlyList<Prompt> queries, IReadOnlyList<Prompt> documents, PoolingParams? p)
    {
        if (documents.Count == 0) return [];
        var all = queries.Concat(documents).ToArray();
        var lateInteraction = _model.Pooler.IsLateInteraction;
        var encoded = Encode(all, lateInteraction ? PoolingTask.TokenEmbed : PoolingTask.Embed, p);
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

    private static float Cosine(float[] a, float[] b)
    {
        var dot = MaxSim.Dot(a, b);
        var na = MathF.Sqrt(MaxSim.Dot(a, a));
        var nb = MathF.Sqrt(MaxSim.Dot(b, b));
        return dot / MathF.Max(na * nb, 1e-8f);
    }

    /// <summary>Frees the model's weights.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            _model.Dispose();
        }
    }
}
