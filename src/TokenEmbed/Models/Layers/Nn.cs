using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// The layer constructors every model uses, so that a model can be built without allocating or initialising its
/// parameters: inside <see cref="OnMeta"/> they are created on the <c>meta</c> device (shapes only), and
/// <see cref="WeightLoader"/> then binds each one to its checkpoint tensor after checking the shape. Outside it they are
/// ordinary, randomly initialised CPU layers (what tests that build modules by hand get).
/// </summary>
internal static class Nn
{
    [ThreadStatic]
    private static Device? t_device;

    /// <summary>Until disposed, layers built on this thread get meta parameters (no memory, no initialisation).</summary>
    public static IDisposable OnMeta()
    {
        var previous = t_device;
        t_device = META;
        return new Restore(previous);
    }

    public static Dense Linear(long inFeatures, long outFeatures, bool hasBias = true) =>
        new(inFeatures, outFeatures, hasBias, t_device);

    public static EmbeddingTable Embedding(long count, long dim) => new(count, dim, t_device);

    public static LayerNorm LayerNorm(long size, double eps, bool bias = true) => nn.LayerNorm(size, eps, bias: bias, device: t_device);

    public static Conv1d Conv1d(long inChannels, long outChannels, long kernel, long padding, long groups, bool bias) =>
        nn.Conv1d(inChannels, outChannels, kernel, padding: padding, groups: groups, bias: bias, device: t_device);

    /// <summary>An uninitialised parameter (weights that are always loaded from the checkpoint).</summary>
    public static Parameter Empty(long[] shape) => new(empty(shape, device: t_device), requires_grad: false);

    /// <summary>A parameter of ones (norm weights).</summary>
    public static Parameter Ones(long size) => new(ones(size, device: t_device));

    private sealed class Restore(Device? previous) : IDisposable
    {
        public void Dispose() => t_device = previous;
    }
}

/// <summary>A module of ours whose parameters <see cref="WeightLoader"/> may replace (TorchSharp's layers have setters).</summary>
internal interface IBindable
{
    /// <summary>Replaces parameter <paramref name="name"/> with <paramref name="value"/>, disposing the old one.</summary>
    void Bind(string name, TorchSharp.Modules.Parameter value);
}
