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

    /// <summary>Whether a Normalize module is listed.</summary>
    public bool Normalize { get; private init; }

    /// <summary><c>max_seq_length</c> of <c>sentence_bert_config.json</c>, or null.</summary>
    public int? MaxSeqLength { get; private init; }

    /// <summary>Reads the layout, or returns null when the folder has no <c>modules.json</c> and no <c>sentence_bert_config.json</c>.</summary>
    public static SentenceTransformersLayout? Load(string folder)
    {
        var modulesPath = Path.Combine(folder, "modules.json");
        var stConfigPath = Path.Combine(folder, "sentence_bert_config.json");
        int? maxSeq = null;
        if (File.Exists(stConfigPath))
        {
            var st = HfConfig.ReadJsonObject(stConfigPath);
            if (st["max_seq_length"] is JsonValue v && v.TryGetValue<double>(out var d))
            {
                if (d <= 0 || d != Math.Floor(d)) throw new ModelLoadException($"'{stConfigPath}': max_seq_length must be a positive integer, found {d}.", stConfigPath);
                maxSeq = (int)d;
            }
        }
        if (!File.Exists(modulesPath))
            return maxSeq == null ? null : new SentenceTransformersLayout { MaxSeqLength = maxSeq };

        JsonArray modules;
        try
        {
            modules = JsonNode.Parse(File.ReadAllText(modulesPath)) as JsonArray
                      ?? throw new ModelLoadException($"'{modulesPath}' must hold a JSON array of modules.", modulesPath);
        }
        catch (System.Text.Json.JsonException e)
        {
            throw new ModelLoadException($"'{modulesPath}' is not valid JSON: {e.Message}", modulesPath, innerException: e);
        }

        PoolingMode? pooling = null;
        var poolingBeforeDense = false;
        var normalize = false;
        var dense = new List<DenseModuleSpec>();
        foreach (var m in modules)
        {
            var type = m?["type"]?.GetValue<string>() ?? throw new ModelLoadException($"'{modulesPath}': a module has no 'type'.", modulesPath);
            var rel = m["path"]?.GetValue<string>() ?? "";
            var dir = Path.Combine(folder, rel);
            var shortName = type[(type.LastIndexOf('.') + 1)..];
            switch (shortName)
            {
                case "Transformer":
                    break;
                case "Pooling":
                    pooling = ReadPooling(Path.Combine(dir, "config.json"));
                    poolingBeforeDense = dense.Count == 0;
                    break;
                case "Dense":
                    dense.Add(ReadDense(dir, rel));
                    break;
                case "Normalize":
                    normalize = true;
                    break;
                default:
                    throw new ModelLoadException(
                        $"'{modulesPath}': module type '{type}' is not supported (supported: Transformer, Pooling, Dense, Normalize).", modulesPath);
            }
        }
        return new SentenceTransformersLayout
        {
            Pooling = pooling, PoolingBeforeDense = pooling != null && poolingBeforeDense, Dense = dense,
            Normalize = normalize, MaxSeqLength = maxSeq,
        };
    }

    private static PoolingMode ReadPooling(string path)
    {
        if (!File.Exists(path)) throw new ModelLoadException($"'{path}' is missing: the Pooling module needs its config.json.", path);
        var c = HfConfig.ReadJsonObject(path);
        bool Flag(string n) => c[n] is JsonValue v && v.TryGetValue<bool>(out var b) && b;
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

    private static DenseModuleSpec ReadDense(string dir, string rel)
    {
        var cfgPath = Path.Combine(dir, "config.json");
        if (!File.Exists(cfgPath)) throw new ModelLoadException($"'{cfgPath}' is missing: the Dense module needs its config.json.", cfgPath);
        var c = HfConfig.ReadJsonObject(cfgPath);
        int Int(string n) => c[n] is JsonValue v && v.TryGetValue<double>(out var d) && d > 0 && d == Math.Floor(d)
            ? (int)d : throw new ModelLoadException($"'{cfgPath}': '{n}' must be a positive integer.", cfgPath);
        var bias = c["bias"] is not JsonValue bv || !bv.TryGetValue<bool>(out var b) || b; // sentence-transformers default: bias=True
        var act = c["activation_function"]?.GetValue<string>() ?? "torch.nn.modules.linear.Identity";
        var weights = Path.Combine(dir, "model.safetensors");
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
