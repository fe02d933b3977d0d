using System.Text.Json.Nodes;

namespace TokenEmbed.Loading;

/// <summary>sentence-transformers pooling modes (<c>1_Pooling/config.json</c>).</summary>
internal enum PoolingMode
{
    /// <summary>The first token.</summary>
    Cls,
    /// <summary>The mean over valid tokens.</summary>
    Mean,
    /// <summary>The element-wise max over valid tokens.</summary>
    Max,
    /// <summary>The sum over valid tokens divided by sqrt(count).</summary>
    MeanSqrtLen,
    /// <summary>The last valid token.</summary>
    LastToken,
}

/// <summary>One <c>Dense</c> module (sentence-transformers or PyLate) of a model folder.</summary>
/// <param name="Folder">The module folder, e.g. <c>1_Dense</c>.</param>
/// <param name="InFeatures">Input size.</param>
/// <param name="OutFeatures">Output size.</param>
/// <param name="Bias">Whether the layer has a bias.</param>
/// <param name="Activation">The activation's short name (identity, tanh, relu, gelu, sigmoid, silu).</param>
/// <param name="WeightsPath">The module's <c>model.safetensors</c>.</param>
internal sealed record DenseModuleSpec(string Folder, int InFeatures, int OutFeatures, bool Bias, string Activation, string WeightsPath);

/// <summary>
/// The multi-vector settings of a sentence-transformers v6 <c>MultiVectorEncoder</c> folder: the Transformer module's
/// <c>query_length</c>, <c>document_length</c>, <c>do_query_expansion</c>, <c>attend_to_expansion_tokens</c> (in its
/// <c>sentence_bert_config.json</c>, at the top level or in a <c>query_expansion</c> object), the <c>MultiVectorMask</c>
/// module's <c>skiplist_words</c> and the <c>HierarchicalPooling</c> module's <c>pool_factor</c> / <c>protected_tokens</c>.
/// Null values: the file does not say.
/// </summary>
internal sealed record MultiVectorSettings(int? QueryLength, int? DocumentLength, bool? DoQueryExpansion, bool? AttendToExpansionTokens,
    bool HasMask, IReadOnlyList<string>? SkiplistWords, int? PoolFactor, int? ProtectedTokens);

/// <summary>
/// The sentence-transformers / PyLate modules of a model folder (<c>modules.json</c>, <c>1_Pooling</c>, Dense
/// modules, <c>2_Normalize</c>, <c>sentence_bert_config.json</c>).
/// </summary>
internal sealed class SentenceTransformersLayout
{
    /// <summary>The pooling module's mode, or null when there is none (PyLate models have none).</summary>
    public PoolingMode? Pooling { get; private init; }

    /// <summary>Whether a Pooling module comes before the Dense modules (then Embed projects the pooled vector).</summary>
    public bool PoolingBeforeDense { get; private init; }

    /// <summary>The Dense modules in order.</summary>
    public IReadOnlyList<DenseModuleSpec> Dense { get; private init; } = [];

    /// <summary><c>max_seq_length</c> of <c>sentence_bert_config.json</c>, or null.</summary>
    public int? MaxSeqLength { get; private init; }

    /// <summary>The sentence-transformers v6 multi-vector settings, or null when the folder is not a <c>MultiVectorEncoder</c>.</summary>
    public MultiVectorSettings? MultiVector { get; private init; }

    /// <summary>Reads the layout, or returns null when the folder has no <c>modules.json</c> and no <c>sentence_bert_config.json</c>.</summary>
    public static SentenceTransformersLayout? Load(string folder)
    {
        var modulesPath = FolderPaths.Inside(folder, "modules.json");
        var stConfigPath = FolderPaths.Inside(folder, "sentence_bert_config.json");
        int? maxSeq = null;
        if (File.Exists(stConfigPath))
        {
            var st = HfConfig.Load(stConfigPath);
            if (st.Has("max_seq_length")) maxSeq = st.GetPositiveInt("max_seq_length", 1);
        }
        if (!File.Exists(modulesPath))
            return maxSeq == null ? null : new SentenceTransformersLayout { MaxSeqLength = maxSeq };

        var modules = JsonFile.ReadArray(modulesPath);
        PoolingMode? pooling = null;
        var poolingBeforeDense = false;
        var dense = new List<DenseModuleSpec>();
        HfConfig? transformerConfig = null;
        HfConfig? maskConfig = null;
        var hasMask = false;
        HfConfig? poolingConfig = null;
        var multiVector = false;
        HfConfig? ModuleConfig(string rel, string name)
        {
            var path = FolderPaths.Inside(folder, Path.Combine(rel, name), modulesPath);
            return File.Exists(path) ? HfConfig.Load(path) : null;
        }
        for (var i = 0; i < modules.Count; i++)
        {
            var m = HfConfig.Element(modules[i], modulesPath, "modules", i);
            var type = m.GetString("type", null) ?? throw JsonFile.Error(modulesPath, $"field '{m.FieldPath("type")}' is missing.");
            var rel = m.GetString("path", null) ?? "";
            var dir = InsideFolder(folder, rel, modulesPath, m.FieldPath("path"));
            var shortName = type[(type.LastIndexOf('.') + 1)..];
            if (type.Contains("multi_vector_encoder", StringComparison.Ordinal)) multiVector = true;
            switch (shortName)
            {
                case "Transformer" or "MultiVectorTransformer":
                    transformerConfig = ModuleConfig(rel, "sentence_bert_config.json");
                    break;
                case "MultiVectorMask":
                    multiVector = true;
                    hasMask = true;
                    maskConfig = ModuleConfig(rel, "config.json");
                    break;
                case "HierarchicalPooling":
                    multiVector = true;
                    poolingConfig = ModuleConfig(rel, "config.json");
                    break;
                case "Pooling":
                    pooling = ReadPooling(FolderPaths.Inside(folder, Path.Combine(rel, "config.json"), modulesPath));
                    poolingBeforeDense = dense.Count == 0;
                    break;
                case "Dense":
                    dense.Add(ReadDense(folder, dir, rel, modulesPath));
                    break;
                case "Normalize":
                    break;   // TokenEmbed and Embed normalize by default (PoolingParams.Normalize), with or without it
                default:
                    throw new ModelLoadException(
                        $"'{modulesPath}': module type '{type}' is not supported (supported: Transformer, Pooling, Dense, Normalize, and MultiVectorEncoder's MultiVectorMask and HierarchicalPooling).", modulesPath);
            }
        }
        return new SentenceTransformersLayout
        {
            Pooling = pooling, PoolingBeforeDense = pooling != null && poolingBeforeDense, Dense = dense,
            MaxSeqLength = maxSeq,
            MultiVector = MultiVectorOf(transformerConfig, hasMask, maskConfig, poolingConfig, multiVector),
        };
    }

    private static readonly string[] MultiVectorKeys = ["query_length", "document_length", "do_query_expansion", "attend_to_expansion_tokens"];

    /// <summary>The v6 settings when the modules (or the Transformer's config keys) say the folder is a MultiVectorEncoder.</summary>
    private static MultiVectorSettings? MultiVectorOf(HfConfig? transformer, bool hasMask, HfConfig? mask, HfConfig? pooling, bool multiVector)
    {
        var t = transformer;
        if (t?.GetSection("query_expansion") is { } nested) t = nested;
        if (!multiVector && (t is null || !MultiVectorKeys.Any(t.Has))) return null;
        int? Length(HfConfig? c, string name) => c is not null && c.Has(name) ? c.GetPositiveInt(name, 1) : null;
        bool? Flag(string name) => t is not null && t.Has(name) ? t.GetBool(name, false) : null;
        int? Count(HfConfig? c, string name) => c is not null && c.Has(name) ? c.GetInt(name, 0) : null;
        var factor = Count(pooling, "pool_factor");
        if (factor is < 1) throw new ModelLoadException($"'{pooling!.FilePath}': pool_factor {factor} must be at least 1.", pooling.FilePath);
        var kept = Count(pooling, "protected_tokens");
        if (kept is < 0) throw new ModelLoadException($"'{pooling!.FilePath}': protected_tokens {kept} must not be negative.", pooling.FilePath);
        return new MultiVectorSettings(Length(t, "query_length"), Length(t, "document_length"), Flag("do_query_expansion"), Flag("attend_to_expansion_tokens"),
            hasMask, mask?.GetStringList("skiplist_words"), factor, kept);
    }

    /// <summary>A module folder, which must lie inside the model folder (a path like <c>../x</c> is an error naming the field).</summary>
    private static string InsideFolder(string folder, string rel, string modulesPath, string field)
    {
        try
        {
            return FolderPaths.Inside(folder, rel, modulesPath);
        }
        catch (ModelLoadException e)
        {
            throw JsonFile.Error(modulesPath, $"field '{field}' is '{rel}', which is not a folder inside the model folder: {e.Message}", inner: e);
        }
    }

    private static PoolingMode ReadPooling(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"'{path}' is missing: the Pooling module needs its config.json.", path);
        var c = HfConfig.Load(path);
        bool Flag(string n) => c.GetBool(n, false);
        var modes = new List<PoolingMode>();
        if (Flag("pooling_mode_cls_token")) modes.Add(PoolingMode.Cls);
        if (Flag("pooling_mode_mean_tokens")) modes.Add(PoolingMode.Mean);
        if (Flag("pooling_mode_max_tokens")) modes.Add(PoolingMode.Max);
        if (Flag("pooling_mode_mean_sqrt_len_tokens")) modes.Add(PoolingMode.MeanSqrtLen);
        if (Flag("pooling_mode_lasttoken")) modes.Add(PoolingMode.LastToken);
        if (Flag("pooling_mode_weightedmean_tokens"))
            throw new ModelLoadException($"'{path}': pooling_mode_weightedmean_tokens is not supported.", path);
        if (modes.Count != 1)
            throw new ModelLoadException($"'{path}': exactly one pooling mode must be enabled, found {modes.Count}" +
                                         (modes.Count > 1 ? " (concatenated pooling modes are not supported)." : "."), path);
        return modes[0];
    }

    private static DenseModuleSpec ReadDense(string folder, string dir, string rel, string modulesPath)
    {
        var cfgPath = FolderPaths.Inside(folder, Path.Combine(rel, "config.json"), modulesPath);
        if (!File.Exists(cfgPath)) throw new ModelLoadException($"'{cfgPath}' is missing: the Dense module needs its config.json.", cfgPath);
        var c = HfConfig.Load(cfgPath);
        int Int(string n) => c.Has(n) ? c.GetPositiveInt(n, 1) : throw JsonFile.Error(cfgPath, $"field '{n}' is missing.");
        var bias = c.GetBool("bias", true); // sentence-transformers default: bias=True
        var act = c.GetString("activation_function", null) ?? "torch.nn.modules.linear.Identity";
        var weights = FolderPaths.Inside(folder, Path.Combine(rel, "model.safetensors"), modulesPath);
        if (!File.Exists(weights))
        {
            var other = File.Exists(Path.Combine(dir, "pytorch_model.bin")) ? " (only pytorch_model.bin is present; convert it to safetensors)" : "";
            throw new ModelLoadException($"'{weights}' is missing: the Dense module's weights{other}.", weights);
        }
        return new DenseModuleSpec(rel, Int("in_features"), Int("out_features"), bias, ActivationName(act, cfgPath), weights);
    }

    private static string ActivationName(string fullName, string cfgPath)
    {
        var s = fullName[(fullName.LastIndexOf('.') + 1)..].ToLowerInvariant();
        return s switch
        {
            "identity" => "identity",
            "tanh" => "tanh",
            "relu" => "relu",
            "gelu" => "gelu",
            "sigmoid" => "sigmoid",
            "silu" or "swish" => "silu",
            _ => throw new ModelLoadException($"'{cfgPath}': activation_function '{fullName}' is not supported.", cfgPath),
        };
    }
}
