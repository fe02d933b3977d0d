using TokenEmbed.Loading;
using TokenEmbed.Models.Heads;
using TokenEmbed.Runtime;
using TokenEmbed.Tokenization;
using static TorchSharp.torch;

namespace TokenEmbed.Models;

/// <summary>
/// A loaded pooling model: backbone on its device, optional float32 projection head, pooling defaults,
/// maximum length and tokenizer. Built from a model folder through <see cref="ModelRegistry"/>.
/// </summary>
internal sealed class PoolingModel : IDisposable
{
    private PoolingModel(IBackbone backbone, ProjectionHead? head, ProjectionHead? tokenEmbedHead, int? tokenEmbedDropsFirstId, bool headAfterPooling,
        PoolingMode embedPooling, bool isMultiVector, int maxModelLength, int vocabSize, Device device, ScalarType dtype, TextTokenizer? tokenizer,
        string architecture, PyLateConfig? pyLate)
    {
        Backbone = backbone;
        Head = head;
        TokenEmbedHead = tokenEmbedHead;
        TokenEmbedDropsFirstId = tokenEmbedDropsFirstId;
        HeadAfterPooling = headAfterPooling;
        EmbedPooling = embedPooling;
        IsMultiVector = isMultiVector;
        MaxModelLength = maxModelLength;
        VocabSize = vocabSize;
        Device = device;
        DType = dtype;
        Tokenizer = tokenizer;
        Architecture = architecture;
        PyLate = pyLate;
    }

    public IBackbone Backbone { get; }
    public ProjectionHead? Head { get; }

    /// <summary>A projection used by TokenEmbed only, in place of <see cref="Head"/> (BGE-M3's <c>colbert_linear</c>).</summary>
    public ProjectionHead? TokenEmbedHead { get; }

    /// <summary>When set, TokenEmbed drops a prompt's first vector if its first token is this id (vLLM's BOSEOSFilter for BGE-M3).</summary>
    public int? TokenEmbedDropsFirstId { get; }

    /// <summary>True when a sentence-transformers Pooling module precedes the Dense modules (Embed projects the pooled vector).</summary>
    public bool HeadAfterPooling { get; }

    public PoolingMode EmbedPooling { get; }

    /// <summary>Whether the model is a late-interaction model (Score = MaxSim) rather than a single-vector one (Score = cosine).</summary>
    public bool IsMultiVector { get; }

    public int MaxModelLength { get; }
    public int VocabSize { get; }
    public Device Device { get; }
    public ScalarType DType { get; }
    public TextTokenizer? Tokenizer { get; }
    public string Architecture { get; }

    /// <summary>
    /// The PyLate settings of <c>config_sentence_transformers.json</c>, or null when the folder has none. Encode does not
    /// use them (vLLM behaviour); they are for an explicit PyLate-style query/document API.
    /// </summary>
    public PyLateConfig? PyLate { get; }

    /// <summary>The size of TokenEmbed / Embed vectors before any Matryoshka cut.</summary>
    public int OutputDimension => Head?.OutFeatures ?? Backbone.HiddenSize;

    /// <summary>The vector size a task produces before any Matryoshka cut.</summary>
    public int DimensionFor(PoolingTask task) =>
        task == PoolingTask.TokenEmbed && TokenEmbedHead is { } t ? t.OutFeatures : OutputDimension;

    /// <summary>Loads <paramref name="folder"/>; every problem is a <see cref="ModelLoadException"/> naming the file, tensor or field.</summary>
    public static PoolingModel Load(string folder, LlmOptions options)
    {
        if (!Directory.Exists(folder))
            throw new ModelLoadException($"Model folder '{folder}' does not exist (downloading from a hub is not supported yet: pass a local folder).", folder);
        var config = HfConfig.Load(Path.Combine(folder, "config.json"));
        var (entry, family) = ModelRegistry.Resolve(config);
        var layout = SentenceTransformersLayout.Load(folder);
        var pyLate = PyLateConfig.Load(folder);

        var device = DeviceSelection.ResolveDevice(options.Device);
        var dtype = DeviceSelection.ResolveDType(options.DType, device, config.GetString("dtype", null) ?? config.GetString("torch_dtype", null));

        using var weights = WeightSet.OpenCheckpoint(folder);
        var prefix = family.Prefixes.FirstOrDefault(p => weights.Contains(p + family.ProbeWeight))
            ?? throw new ModelLoadException(
                $"The checkpoint in '{folder}' has no '{family.ProbeWeight}' (tried prefixes {string.Join(", ", family.Prefixes.Select(p => $"'{p}'"))}): " +
                $"it does not hold a {family.ModelType} model.", folder, family.ProbeWeight);

        var consumed = new HashSet<string>(StringComparer.Ordinal);
        IBackbone? backbone = null;
        ProjectionHead? head = null;
        ProjectionHead? tokenHead = null;
        try
        {
            backbone = family.Create(config);
            backbone.LoadWeights(weights, prefix, consumed);

            if (entry.Head == HeadKind.ColBertLinear)
            {
                if (layout?.Dense.Count > 0)
                    throw new ModelLoadException($"'{folder}' has both a colbert-ai 'linear' head and sentence-transformers Dense modules; only one head is supported.", folder);
                head = ProjectionHead.ColBertLinear(weights, "linear.weight", backbone.HiddenSize, consumed);
            }
            else if (layout?.Dense.Count > 0)
            {
                head = ProjectionHead.FromDenseModules(layout.Dense, weights, backbone.HiddenSize, consumed);
            }
            else if (entry.Head == HeadKind.DenseModules)
            {
                throw new ModelLoadException(
                    $"'{folder}': {entry.Architecture} is a ColBERT model whose projection is a sentence-transformers / PyLate Dense module " +
                    "(modules.json listing e.g. 1_Dense with its config.json and model.safetensors), and the folder has none.", folder);
            }

            int? dropsFirst = null;
            var colbertKey = BgeM3ColBertLinear(folder, weights);
            if (entry.Head == HeadKind.BgeM3ColBert && colbertKey == null)
                throw new ModelLoadException(
                    $"'{folder}': {entry.Architecture} needs the colbert_linear projection, as 'colbert_linear.weight' in the checkpoint or " +
                    $"'{ColBertLinearFile}' (weight/bias) beside it; a colbert_linear.pt must be converted to safetensors first.",
                    folder, "colbert_linear.weight");
            if (colbertKey != null && entry.Head is HeadKind.None or HeadKind.BgeM3ColBert)
            {
                if (head != null)
                    throw new ModelLoadException($"'{folder}' has both a colbert_linear projection and sentence-transformers Dense modules; only one head is supported.", folder);
                tokenHead = ProjectionHead.LinearWithOptionalBias(weights, colbertKey, backbone.HiddenSize, consumed);
                dropsFirst = config.GetInt("bos_token_id", 0);
            }

            var unexpected = weights.Names
                .Where(n => !consumed.Contains(n))
                .Where(n => !(n.StartsWith(prefix, StringComparison.Ordinal) && family.IsIgnorable(n[prefix.Length..])))
                .Where(n => !entry.DroppedPrefixes.Any(d => n.StartsWith(d, StringComparison.Ordinal)))
                // BGE-M3's lexical-weight head: sparse output is not a task this library offers.
                .Where(n => !(tokenHead != null && n.StartsWith("sparse_linear.", StringComparison.Ordinal)))
                .Order(StringComparer.Ordinal).ToList();
            if (unexpected.Count > 0)
                throw new ModelLoadException(
                    $"The checkpoint in '{folder}' has {unexpected.Count} unexpected weight(s) for {entry.Architecture}: " +
                    string.Join(", ", unexpected.Take(10).Select(n => $"'{n}'")) + (unexpected.Count > 10 ? ", …" : "") + ".",
                    weights.Get(unexpected[0]).FilePath, unexpected[0]);

            backbone.To(device, dtype);
            head?.To(device);
            tokenHead?.To(device);

            var maxLen = backbone.MaxPositions ?? int.MaxValue;
            if (layout?.MaxSeqLength is { } st) maxLen = Math.Min(maxLen, st);
            if (options.MaxModelLength is { } user)
            {
                if (user <= 0 || (backbone.MaxPositions is { } mp && user > mp))
                    throw new ArgumentOutOfRangeException(nameof(options), user,
                        $"LlmOptions.MaxModelLength must be between 1 and the model's position limit ({backbone.MaxPositions}).");
                maxLen = user;
            }

            var tokenizer = TokenizerLoader.FromFolder(folder);
            var isMultiVector = head != null && (entry.Head != HeadKind.None || layout?.Pooling == null);
            var embedPooling = layout?.Pooling ?? (backbone.IsCausal ? PoolingMode.LastToken : PoolingMode.Cls);
            return new PoolingModel(backbone, head, tokenHead, dropsFirst, layout?.PoolingBeforeDense == true, embedPooling, isMultiVector, maxLen,
                backbone.VocabSize, device, dtype, tokenizer, entry.Architecture, pyLate);
        }
        catch
        {
            backbone?.Dispose();
            head?.Dispose();
            tokenHead?.Dispose();
            throw;
        }
    }

    /// <summary>The file BGE-M3's colbert_linear may come in, converted from FlagEmbedding's <c>colbert_linear.pt</c>.</summary>
    public const string ColBertLinearFile = "colbert_linear.safetensors";

    /// <summary>
    /// The key of BGE-M3's <c>colbert_linear</c> weight: <c>colbert_linear.weight</c> in the checkpoint, or
    /// <c>weight</c> (or <c>colbert_linear.weight</c>) in <see cref="ColBertLinearFile"/>, which is then added to the set.
    /// Null when there is none.
    /// </summary>
    private static string? BgeM3ColBertLinear(string folder, WeightSet weights)
    {
        var inCheckpoint = weights.Contains("colbert_linear.weight") ? "colbert_linear.weight" : null;
        var file = Path.Combine(folder, ColBertLinearFile);
        if (!File.Exists(file)) return inCheckpoint;
        if (inCheckpoint != null)
            throw new ModelLoadException($"'{folder}' has colbert_linear both in its checkpoint and in '{ColBertLinearFile}'.", file, inCheckpoint);
        const string prefix = "colbert_linear/";
        weights.AddFile(file, prefix);
        return new[] { prefix + "weight", prefix + "colbert_linear.weight" }.FirstOrDefault(weights.Contains)
            ?? throw new ModelLoadException($"'{file}' has no 'weight' (nor 'colbert_linear.weight').", file, prefix + "weight");
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Backbone.Dispose();
        Head?.Dispose();
        TokenEmbedHead?.Dispose();
    }
}
