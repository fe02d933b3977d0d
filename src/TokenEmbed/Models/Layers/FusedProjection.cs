using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// Several linear layers over the same input run as one GEMM (BERT's <c>query</c> / <c>key</c> / <c>value</c>, a decoder's
/// <c>q_proj</c> / <c>k_proj</c> / <c>v_proj</c>): the layers keep their own state-dict names for loading, and
/// <see cref="Fuse"/> (after the model reached its device and dtype) concatenates their weights into one [Σout, in] tensor
/// and rebinds each layer's weight and bias as a view of it, so memory does not grow. Until then, or if the layers are moved
/// again afterwards, <see cref="Forward"/> runs the layers one by one.
/// </summary>
internal sealed class FusedProjection : IDisposable
{
    private readonly Dense[] _parts;
    private Tensor? _weight;
    private Tensor? _bias;
    private IntPtr[] _bound = [];

    /// <param name="parts">The layers, in output order; all take the same input size.</param>
    public FusedProjection(params Dense[] parts) => _parts = parts;

    /// <summary>Whether the fused weight is in use.</summary>
    public bool IsFused => _weight is not null && _parts.Select(p => p.Weight.Handle).SequenceEqual(_bound);

    /// <summary>Concatenates the layers' weights (and biases, when every layer has one) and rebinds them as views.</summary>
    public void Fuse()
    {
        using var noGrad = no_grad();
        Release();
        var hasBias = _parts.All(p => p.Bias is not null);
        if (!hasBias && _parts.Any(p => p.Bias is not null)) return;   // mixed: stays unfused
        // Stored as [in, out] (transposed, like every Dense after loading: see Dense.StoreTransposed), viewed as [out, in].
        var columns = _parts.Select(p => p.Weight.t()).ToArray();
        using (var stored = cat(columns, 1)) _weight = stored.t();
        foreach (var c in columns) c.Dispose();
        _bias = hasBias ? cat(_parts.Select(p => p.Bias!).ToArray(), 0) : null;
        long offset = 0;
        foreach (var p in _parts)
        {
            var n = p.Weight.shape[0];
            p.Bind("weight", new TorchSharp.Modules.Parameter(_weight.narrow(0, offset, n), requires_grad: false));
            if (_bias is not null) p.Bind("bias", new TorchSharp.Modules.Parameter(_bias.narrow(0, offset, n), requires_grad: false));
            offset += n;
        }
        _bound = _parts.Select(p => p.Weight.Handle).ToArray();
    }

    /// <summary>The layers' outputs concatenated along the last axis: [..., Σout].</summary>
    public Tensor Forward(Tensor x)
    {
        if (IsFused) return Gemm.Linear(x, _weight!, _bias);
        var outputs = _parts.Select(p => p.forward(x)).ToArray();
        try
        {
            return cat(outputs, -1);
        }
        finally
        {
            foreach (var o in outputs) o.Dispose();
        }
    }

    private void Release()
    {
        _weight?.Dispose();
        _bias?.Dispose();
        _weight = _bias = null;
        _bound = [];
    }

    /// <inheritdoc />
    public void Dispose() => Release();
}

/// <summary>A module holding <see cref="FusedProjection"/>s, fused once the model is on its device (<see cref="PoolingModel"/>).</summary>
internal interface IFusable
{
    /// <summary>Fuses the module's projections (see <see cref="FusedProjection.Fuse"/>).</summary>
    void Fuse();
}
