using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// RMSNorm as Qwen3 / Llama / LFM2 implement it: <c>y = x32 · rsqrt(mean(x32², -1) + eps)</c> in float32, cast back,
/// then multiplied by <c>weight</c> (state-dict name <c>weight</c>).
/// </summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>, IBindable
{
    private Parameter weight;
    private readonly double _eps;

    public RmsNorm(long size, double eps, string name = "norm") : base(name)
    {
        weight = Nn.Ones(size);
        _eps = eps;
        RegisterComponents();
    }

    /// <inheritdoc />
    public void Bind(string name, Parameter value)
    {
        if (name != nameof(weight)) throw new ArgumentException($"RmsNorm has no parameter '{name}'.", nameof(name));
        weight.Dispose();
        weight = value;
        ConditionallyRegisterParameter(nameof(weight), value);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var variance = x32.mul(x32).mean([-1L], keepdim: true);   // not square(): TorchSharp implements it with a temporary Scalar
        var y = (x32 * variance.add(Ops.D(_eps), Ops.One).rsqrt()).to(x.dtype);
        return (weight * y).MoveToOuterDisposeScope();
    }
}
