using TokenEmbed.Images;
using TokenEmbed.Loading;
using TokenEmbed.Models.Architectures;
using TokenEmbed.Models.Layers;
using TokenEmbed.Pooling;
using TokenEmbed.Runtime;
using TokenEmbed.Tokenization;
using static TorchSharp.torch;

namespace TokenEmbed.Models;

/// <summary>
/// A loaded pooling model: backbone on its device, the architecture's pooler (float32 heads, pooling defaults), maximum
/// length and tokenizer. Built from a model folder through <see cref="ModelRegistry"/>.
/// </summary>
/// <param name="Architecture">The architecture that was loaded.</param>
/// <param name="Backbone">The backbone, on <paramref name="Device"/>.</param>
/// <param name="Pooler">The architecture's heads and pooling, applied per request.</param>
/// <param name="MaxModelLength">The most tokens a prompt may have.</param>
/// <param name="Device">The device the backbone runs on.</param>
/// <param name="Tokenizer">The folder's tokenizer, or null when it has none.</param>
/// <param name="Folder">The folder's configuration files (PyLate settings among them).</param>
/// <param name="Images">The image processor of a model with a vision tower (<c>preprocessor_config.json</c>), else null.</param>
internal sealed record PoolingModel(PoolingArchitecture Architecture, IBackbone Backbone, Pooler Pooler, int MaxModelLength, Device Device,
    TextTokenizer? Tokenizer, ModelFolder Folder, Qwen2VlImageProcessor? Images = null) : IDisposable
{
    /// <summary>How the CPU float32 linear layers run (<see cref="LlmOptions.CpuMatmul"/>), with the line <see cref="Llm.Backend"/> shows.</summary>
    public MatmulPath Matmul { get; init; } = MatmulPath.NotApplicable("");

    /// <summary>The number of token ids the embedding table holds.</summary>
    public int VocabSize => Backbone.VocabSize;

    /// <summary>Loads <paramref name="path"/>; every problem is a <see cref="ModelLoadException"/> naming the file, tensor or field.</summary>
    public static PoolingModel Load(string path, LlmOptions options)
    {
        var folder = ModelFolder.Read(path);
        return Load(folder, options, ModelRegistry.Resolve(folder.Config, options.Architecture));
    }

    /// <summary>Loads <paramref name="folder"/> as <paramref name="architecture"/>: build, check strictness, move to the device.</summary>
    public static PoolingModel Load(ModelFolder folder, LlmOptions options, PoolingArchitecture architecture)
    {
        var config = folder.Config;
        var family = architecture.BackboneFor(config);
        var device = DeviceSelection.ResolveDevice(options.Device);
        var dtype = DeviceSelection.ResolveDType(options.DType, device, config.GetString("dtype", null) ?? config.GetString("torch_dtype", null));

        using var weights = WeightSet.OpenCheckpoint(folder.Path);
        var prefix = family.Prefixes.FirstOrDefault(p => weights.Contains(p + family.ProbeWeight))
            ?? throw new ModelLoadException(
                $"The checkpoint in '{folder.Path}' has no '{family.ProbeWeight}' (tried prefixes {string.Join(", ", family.Prefixes.Select(p => $"'{p}'"))}): " +
                $"it does not hold a {family.Name} model.", folder.Path, family.ProbeWeight);

        var consumed = new HashSet<string>(StringComparer.Ordinal);
        IBackbone? backbone = null;
        Pooler? pooler = null;
        try
        {
            CheckLayerCount(config, weights, folder.Path);
            // Built on the meta device (shapes only), then bound to the checkpoint's tensors: nothing is allocated or
            // randomly initialised before every shape has been checked against the checkpoint.
            using (Nn.OnMeta()) backbone = family.Create(config);
            backbone.LoadWeights(weights, prefix, consumed);
            pooler = architecture.BuildPooler(new HeadContext(folder, backbone, weights, consumed));
            RejectUnexpected(weights, consumed, prefix, family, architecture, folder.Path);
            backbone.To(device, dtype);
            if (backbone is TorchSharp.torch.nn.Module root)
            {
                foreach (var m in root.modules()) (m as Dense)?.StoreTransposed();
                foreach (var m in root.modules()) (m as IFusable)?.Fuse();
            }
            pooler.To(device);
            var images = backbone is IVisionBackbone v
                ? Qwen2VlImageProcessor.Load(folder.Path, v.PatchGeometry.Patch, v.PatchGeometry.Temporal, v.PatchGeometry.Merge)
                : null;
            var logger = (options.LoggerFactory ?? Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance).CreateLogger("TokenEmbed");
            var matmul = MatmulSelection.Choose(options.CpuMatmul, device, dtype, logger);
            return new PoolingModel(architecture, backbone, pooler, MaxLength(backbone, folder, options), device, TokenizerLoader.FromFolder(folder.Path), folder, images)
            {
                Matmul = matmul,
            };
        }
        catch (Exception e) when (e is System.Runtime.InteropServices.ExternalException or OutOfMemoryException or InsufficientMemoryException)
        {
            backbone?.Dispose();
            pooler?.Dispose();
            // libtorch failures (an allocation that failed, a native error) are load failures too, with the cause kept.
            throw new ModelLoadException($"Loading the model in '{folder.Path}' failed in the native runtime: {e.Message}", folder.Path, null, e);
        }
        catch
        {
            backbone?.Dispose();
            pooler?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// config.json's <c>num_hidden_layers</c> against the layers the checkpoint holds (the largest N of a
    /// <c>layer.N.</c> / <c>layers.N.</c> name), before anything is built: a config asking for more layers than there are
    /// is refused without constructing them.
    /// </summary>
    private static void CheckLayerCount(HfConfig config, WeightSet weights, string folder)
    {
        if (!config.Has("num_hidden_layers")) return;
        var wanted = config.GetPositiveInt("num_hidden_layers", 1);
        var have = 0;
        foreach (var name in weights.Names)
        {
            var parts = name.Split('.');
            for (var i = 0; i + 1 < parts.Length; i++)
                if (parts[i] is "layer" or "layers" && int.TryParse(parts[i + 1], System.Globalization.NumberStyles.None, null, out var n))
                    have = Math.Max(have, n + 1);
        }
        if (wanted > have)
            throw new ModelLoadException(
                $"'{config.FilePath}': field 'num_hidden_layers' is {wanted}, but the checkpoint in '{folder}' holds {have} layer(s).", config.FilePath);
    }

    /// <summary>Strict loading: every checkpoint weight is read, ignorable for the family or architecture, or under a dropped prefix.</summary>
    private static void RejectUnexpected(WeightSet weights, HashSet<string> consumed, string prefix, BackboneFamily family, PoolingArchitecture architecture, string folder)
    {
        var unexpected = weights.Names
            .Where(n => !consumed.Contains(n))
            .Where(n => !(n.StartsWith(prefix, StringComparison.Ordinal) && family.IsIgnorable(n[prefix.Length..])))
            .Where(n => !architecture.DroppedPrefixes.Any(d => n.StartsWith(d, StringComparison.Ordinal)))
            .Where(n => !architecture.IsIgnorable(n))
            .Order(StringComparer.Ordinal).ToList();
        if (unexpected.Count > 0)
            throw new ModelLoadException(
                $"The checkpoint in '{folder}' has {unexpected.Count} unexpected weight(s) for {architecture.Name}: " +
                string.Join(", ", unexpected.Take(10).Select(n => $"'{n}'")) + (unexpected.Count > 10 ? ", …" : "") + ".",
                weights.Get(unexpected[0]).FilePath, unexpected[0]);
    }

    /// <summary>The position limit, capped by sentence-transformers' <c>max_seq_length</c> and <see cref="LlmOptions.MaxModelLength"/> (vLLM).</summary>
    private static int MaxLength(IBackbone backbone, ModelFolder folder, LlmOptions options)
    {
        var maxLen = backbone.MaxPositions ?? int.MaxValue;
        if (folder.Layout?.MaxSeqLength is { } st) maxLen = Math.Min(maxLen, st);
        if (options.MaxModelLength is not { } user) return maxLen;
        if (user <= 0 || (backbone.MaxPositions is { } mp && user > mp))
            throw new ArgumentOutOfRangeException(nameof(options), user,
                $"LlmOptions.MaxModelLength must be between 1 and the model's position limit ({backbone.MaxPositions}).");
        return user;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        Backbone.Dispose();
        Pooler.Dispose();
    }
}
