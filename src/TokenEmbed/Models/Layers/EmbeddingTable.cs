using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// <c>nn.Embedding</c> for inference (state-dict name <c>weight</c>, [count, dim]): the rows of the ids. A managed module
/// rather than TorchSharp's native one, so that <see cref="WeightLoader"/> can bind its weight straight to the checkpoint
/// tensor (<see cref="Nn.OnMeta"/>) and disposing the model frees it.
/// </summary>
internal sealed class EmbeddingTable : nn.Module<Tensor, Tensor>, IBindable
{
    private Parameter weight;

    public EmbeddingTable(long count, long dim, Device? device) : base("embedding")
    {
        weight = new Parameter(empty(count, dim, device: device), requires_grad: false);
        if (device is null || device.type != DeviceType.META) nn.init.normal_(weight);   // nn.Embedding's initialisation
        RegisterComponents();
    }

    /// <summary>The table [count, dim].</summary>
    public Tensor Weight => weight;

    /// <inheritdoc />
    public void Bind(string name, Parameter value)
    {
        if (name != nameof(weight)) throw new ArgumentException($"An embedding table has no parameter '{name}'.", nameof(name));
        weight.Dispose();
        weight = value;
        ConditionallyRegisterParameter(nameof(weight), value);
    }

    public override Tensor forward(Tensor ids)
    {
        using var flat = ids.flatten();
        using var rows = weight.index_select(0, flat);
        return rows.view([.. ids.shape, weight.shape[1]]);
    }
}
