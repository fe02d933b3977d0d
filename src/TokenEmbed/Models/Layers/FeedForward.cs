using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// The plain two-layer MLP <c>out(act(in(x)))</c> with biases, registered under each family's state-dict names
/// (Jina's <c>mlp.fc1</c> / <c>mlp.fc2</c>, Qwen3-VL vision's <c>mlp.linear_fc1</c> / <c>mlp.linear_fc2</c>), so loading stays 1:1.
/// </summary>
internal sealed class FeedForward : nn.Module<Tensor, Tensor>
{
    private readonly Dense _in;
    private readonly Dense _out;
    private readonly Func<Tensor, Tensor> _act;

    /// <param name="inName">The first projection's attribute name.</param>
    /// <param name="outName">The second projection's attribute name.</param>
    /// <param name="hidden">The model width.</param>
    /// <param name="intermediate">The inner width.</param>
    /// <param name="activation">The activation's config name (e.g. <c>gelu</c>, <c>gelu_pytorch_tanh</c>).</param>
    public FeedForward(string inName, string outName, int hidden, int intermediate, string activation) : base("mlp")
    {
        _in = Nn.Linear(hidden, intermediate);
        _out = Nn.Linear(intermediate, hidden);
        _act = Activations.GetInPlace(activation);
        register_module(inName, _in);
        register_module(outName, _out);
    }

    public override Tensor forward(Tensor x)
    {
        using var g = _act(_in.forward(x));   // in place on the fresh intermediate
        return _out.forward(g);
    }
}
