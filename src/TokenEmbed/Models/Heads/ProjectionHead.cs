using TokenEmbed.Loading;
using TokenEmbed.Models.Layers;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Heads;

/// <summary>One linear layer of a projection head: y = act(x·Wᵀ + b), in float32.</summary>
internal sealed class DenseLayer : IDisposable
{
    public DenseLayer(Tensor weight, Tensor? bias, string activation)
    {
        Weight = weight;
        Bias = bias;
        ActivationName = activation;
        Activation = Activations.Get(activation);
    }

    public Tensor Weight { get; private set; }
    public Tensor? Bias { get; private set; }
    public string ActivationName { get; }
    public Func<Tensor, Tensor> Activation { get; }
    public int OutFeatures => (int)Weight.shape[0];
    public int InFeatures => (int)Weight.shape[1];

    public void To(Device device)
    {
        var w = Weight.to(device);
        Weight.Dispose();
        Weight = w;
        if (Bias is not null)
        {
            var b = Bias.to(device);
            Bias.Dispose();
            Bias = b;
        }
    }

    public Tensor Forward(Tensor x)
    {
        using var y = Gemm.Linear(x, Weight, Bias);
        return ActivationName == "identity" ? y.alias() : Activation(y);
    }

    public void Dispose()
    {
        Weight.Dispose();
        Bias?.Dispose();
    }
}

/// <summary>
/// The token projection of a ColBERT-style model: the colbert-ai <c>linear</c> (no bias) or a chain of
/// sentence-transformers / PyLate <c>Dense</c> modules. Runs in float32, as vLLM's projector does.
/// </summary>
internal sealed class ProjectionHead : IDisposable
{
    private readonly List<DenseLayer> _layers;

    private ProjectionHead(List<DenseLayer> layers) => _layers = layers;

    /// <summary>The output size.</summary>
    public int OutFeatures => _layers[^1].OutFeatures;

    /// <summary>The layers in order.</summary>
    public IReadOnlyList<DenseLayer> Layers => _layers;

    /// <summary>The colbert-ai head: <c>linear.weight</c> [dim, hidden], no bias.</summary>
    public static ProjectionHead ColBertLinear(WeightSet weights, string key, int hidden, ISet<string> consumed)
    {
        if (!weights.Contains(key))
            throw new ModelLoadException($"Weight '{key}' (the ColBERT projection, [dim, {hidden}]) is missing from the checkpoint.", tensorName: key);
        var biasKey = BiasKeyOf(key);
        if (weights.Contains(biasKey))
            throw new ModelLoadException($"Weight '{biasKey}' is unexpected: the colbert-ai projection has no bias.", weights.Get(biasKey).FilePath, biasKey);
        return LinearWithOptionalBias(weights, key, hidden, consumed);
    }

    /// <summary>
    /// A single linear projection <c>weightKey</c> [dim, hidden] with an optional bias (the key with <c>weight</c> →
    /// <c>bias</c>), such as BGE-M3's <c>colbert_linear</c>.
    /// </summary>
    /// <param name="weights">The checkpoint.</param>
    /// <param name="weightKey">The weight's name.</param>
    /// <param name="hidden">The input size.</param>
    /// <param name="consumed">Weights read so far.</param>
    /// <param name="keep">When set, only the first <paramref name="keep"/> outputs are kept (a head wider than the model's
    /// configured dim, sliced as OpsColQwen3 does); a head narrower than that is an error.</param>
    public static ProjectionHead LinearWithOptionalBias(WeightSet weights, string weightKey, int hidden, ISet<string> consumed, int? keep = null)
    {
        var info = weights.Get(weightKey);
        if (info.Shape.Length != 2 || info.Shape[1] != hidden || info.Shape[0] <= 0)
            throw new ModelLoadException(
                $"Weight '{weightKey}' in '{info.FilePath}' has shape [{string.Join(", ", info.Shape)}]; the projection must be [dim, {hidden}].",
                info.FilePath, weightKey);
        if (keep is { } k && (k <= 0 || k > info.Shape[0]))
            throw new ModelLoadException(
                $"Weight '{weightKey}' in '{info.FilePath}' has {info.Shape[0]} outputs, but the config asks for {k}.", info.FilePath, weightKey);
        var biasKey = BiasKeyOf(weightKey);
        var b = weights.Contains(biasKey) ? WeightLoader.ReadFloat32(weights, biasKey, [info.Shape[0]], consumed) : null;
        var w = WeightLoader.ReadFloat32(weights, weightKey, info.Shape, consumed);
        if (keep is { } n && n < info.Shape[0])
        {
            // Linear then [..., :n] equals a linear with the first n rows.
            (w, b) = (Narrow(w, n), b is null ? null : Narrow(b, n));
        }
        return new ProjectionHead([new DenseLayer(w, b, "identity")]);
    }

    private static Tensor Narrow(Tensor t, int n)
    {
        using (t) return t.narrow(0, 0, n).contiguous();
    }

    private static string BiasKeyOf(string weightKey) => weightKey[..^"weight".Length] + "bias";

    /// <summary>The Dense modules of a sentence-transformers / PyLate folder, checked against their configs and the hidden size.</summary>
    public static ProjectionHead FromDenseModules(IReadOnlyList<DenseModuleSpec> specs, WeightSet weights, int hidden, ISet<string> consumed)
    {
        var layers = new List<DenseLayer>();
        var inFeatures = hidden;
        foreach (var spec in specs)
        {
            if (spec.InFeatures != inFeatures)
                throw new ModelLoadException(
                    $"'{spec.Folder}/config.json': in_features is {spec.InFeatures}, but the preceding layer gives {inFeatures}.", spec.WeightsPath);
            var prefix = spec.Folder + "/";
            weights.AddFile(spec.WeightsPath, prefix);
            var weightKey = new[] { "linear.weight", "weight", "dense.weight" }.Select(k => prefix + k).FirstOrDefault(weights.Contains)
                ?? throw new ModelLoadException($"'{spec.WeightsPath}' has no 'linear.weight' (nor 'weight' / 'dense.weight').", spec.WeightsPath, prefix + "linear.weight");
            var w = WeightLoader.ReadFloat32(weights, weightKey, [spec.OutFeatures, spec.InFeatures], consumed);
            Tensor? b = null;
            var biasKey = weightKey[..^"weight".Length] + "bias";
            if (spec.Bias)
            {
                if (!weights.Contains(biasKey))
                    throw new ModelLoadException($"'{spec.WeightsPath}': the config says bias=true but '{biasKey[prefix.Length..]}' is missing.", spec.WeightsPath, biasKey);
                b = WeightLoader.ReadFloat32(weights, biasKey, [spec.OutFeatures], consumed);
            }
            else if (weights.Contains(biasKey))
            {
                throw new ModelLoadException($"'{spec.WeightsPath}': the config says bias=false but the file has '{biasKey[prefix.Length..]}'.", spec.WeightsPath, biasKey);
            }
            layers.Add(new DenseLayer(w, b, spec.Activation));
            inFeatures = spec.OutFeatures;
        }
        return new ProjectionHead(layers);
    }

    /// <summary>Moves the weights to <paramref name="device"/> (they stay float32).</summary>
    public void To(Device device)
    {
        foreach (var l in _layers) l.To(device);
    }

    /// <summary>Applies the chain to float32 vectors [..., hidden].</summary>
    public Tensor Forward(Tensor x)
    {
        var h = x.alias();
        foreach (var l in _layers)
        {
            var next = l.Forward(h);
            h.Dispose();
            h = next;
        }
        return h;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var l in _layers) l.Dispose();
    }
}
