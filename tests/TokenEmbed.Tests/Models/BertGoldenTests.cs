using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models.Bert;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>BertModel against transformers 5.17's last_hidden_state (../shared/fixtures/goldens/bert).</summary>
public sealed class BertGoldenTests
{
    private static string Folder => TestPaths.Fixture("goldens", "bert");

    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    [Test]
    public void LastHiddenStateMatchesTransformersWithTokenTypes()
    {
        var config = BertConfig.From(HfConfig.Load(Path.Combine(Folder, "config.json")));
        using var model = new BertModel(config);
        using (var weights = WeightSet.OpenCheckpoint(Folder))
            TokenEmbed.Models.Layers.WeightLoader.Load(model, weights, "", new HashSet<string>());

        using var golden = SafeTensorsFile.Open(Path.Combine(Folder, "golden.safetensors"));
        var (ids, shape) = Reference.ReadInt64(golden, "input_ids");
        var (mask, _) = Reference.ReadInt64(golden, "attention_mask");
        var (types, _) = Reference.ReadInt64(golden, "token_type_ids");
        var (expected, hShape) = Reference.ReadFloat32(golden, "last_hidden_state");

        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var output = model.forward(tensor(ids, shape), tensor(mask, shape), tensor(types, shape)).contiguous();
        var actual = output.data<float>().ToArray();

        var (max, compared) = Reference.MaxAbsDiffValid(actual, expected, mask, (int)hShape[1], (int)hShape[2]);
        TestContext.Out.WriteLine($"bert golden: max |diff| = {max:E2} over {compared} valid positions");
        Assert.That(compared, Is.EqualTo(24 + 15));
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }
}
