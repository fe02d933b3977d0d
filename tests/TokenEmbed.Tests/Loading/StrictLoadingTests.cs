using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Loading;

/// <summary>Loading is strict: every broken checkpoint fails in the constructor with a typed error naming the problem.</summary>
public sealed class StrictLoadingTests
{
    private static string Golden => TestPaths.Fixture("goldens", "bert");

    private static TempFolder FolderWith(Action<Dictionary<string, (long[] Shape, float[] Data)>> edit, string architecture = "BertModel")
    {
        var tensors = Checkpoints.ReadAll(Golden);
        edit(tensors);
        var folder = new TempFolder();
        Checkpoints.WriteConfig(Golden, folder.Path, architecture);
        SafeTensorsWriter.WriteF32(folder.File("model.safetensors"), tensors);
        return folder;
    }

    private static ModelLoadException LoadFails(string path) =>
        Assert.Throws<ModelLoadException>(() => new Llm(path, new LlmOptions { Device = "cpu" }).Dispose())!;

    [Test]
    public void TheGoldenCheckpointLoadsWithItsUnusedPooler()
    {
        using var llm = new Llm(Golden, new LlmOptions { Device = "cpu" });
        Assert.That(llm.Architecture, Is.EqualTo("BertModel"));
        Assert.That(llm.Dimension, Is.EqualTo(64));
    }

    [Test]
    public void MissingWeightIsNamed()
    {
        const string name = "encoder.layer.1.output.dense.bias";
        using var f = FolderWith(t => t.Remove(name));
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.EqualTo(name));
        Assert.That(e.Message, Does.Contain(name).And.Contain("missing"));
    }

    [Test]
    public void UnexpectedWeightIsNamed()
    {
        const string name = "encoder.layer.2.output.dense.bias";
        using var f = FolderWith(t => t[name] = ([64], new float[64]));
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.EqualTo(name));
        Assert.That(e.Message, Does.Contain(name).And.Contain("unexpected"));
    }

    [Test]
    public void MisShapedWeightIsNamedWithBothShapes()
    {
        const string name = "embeddings.word_embeddings.weight";
        using var f = FolderWith(t => t[name] = ([999, 64], new float[999 * 64]));
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.EqualTo(name));
        Assert.That(e.Message, Does.Contain("[999, 64]").And.Contain("[1000, 64]"));
    }

    [Test]
    public void ColBertWithoutProjectionFails()
    {
        using var f = FolderWith(_ => { }, "HF_ColBERT");
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.EqualTo("linear.weight"));
    }

    [Test]
    public void ColBertProjectionOfTheWrongWidthFails()
    {
        using var f = FolderWith(t => t["linear.weight"] = ([8, 63], new float[8 * 63]), "HF_ColBERT");
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("linear.weight").And.Contain("[8, 63]"));
    }

    [Test]
    public void TruncatedWeightFileFailsInTheConstructor()
    {
        using var f = new TempFolder().CopyFrom(Golden, "config.json");
        var bytes = File.ReadAllBytes(Path.Combine(Golden, "model.safetensors"));
        File.WriteAllBytes(f.File("model.safetensors"), bytes.AsSpan(0, bytes.Length / 2).ToArray());
        var e = LoadFails(f.Path);
        Assert.That(e.FilePath, Does.EndWith("model.safetensors"));
        Assert.That(e.Message, Does.Contain("model.safetensors"));
    }

    [Test]
    public void UnknownArchitectureListsTheSupportedOnes()
    {
        using var f = new TempFolder().CopyFrom(Golden, "model.safetensors");
        Checkpoints.WriteConfig(Golden, f.Path, "FancyNewModel");
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("FancyNewModel").And.Contain("BertModel").And.Contain("HF_ColBERT"));
    }

    [Test]
    public void MissingConfigOrFolderFails()
    {
        using var f = new TempFolder().CopyFrom(Golden, "model.safetensors");
        Assert.That(LoadFails(f.Path).Message, Does.Contain("config.json"));
        Assert.That(LoadFails(f.File("nope")).Message, Does.Contain("does not exist"));
    }

    [Test]
    public void BadConfigFieldIsNamed()
    {
        using var f = new TempFolder().CopyFrom(Golden, "model.safetensors");
        File.WriteAllText(f.File("config.json"), """{"architectures":["BertModel"],"model_type":"bert","hidden_size":"big"}""");
        Assert.That(LoadFails(f.Path).Message, Does.Contain("hidden_size"));
    }

    [TestCase("bert", "pylate.models.Dense.Dense")]
    [TestCase("modernbert", "pylate.models.Dense.Dense")]
    [TestCase("modernbert", "sentence_transformers.models.Dense")]
    public void DenseWeightDisagreeingWithItsConfigFails(string golden, string denseType)
    {
        using var f = new TempFolder().CopyFrom(TestPaths.Fixture("goldens", golden), "config.json", "model.safetensors");
        File.WriteAllText(f.File("modules.json"),
            $$"""[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Dense","type":"{{denseType}}"}]""");
        Directory.CreateDirectory(f.File("1_Dense"));
        File.WriteAllText(f.File("1_Dense/config.json"), """{"in_features":64,"out_features":16,"bias":false,"activation_function":"torch.nn.modules.linear.Identity"}""");
        SafeTensorsWriter.WriteF32(f.File("1_Dense/model.safetensors"), new Dictionary<string, (long[], float[])> { ["linear.weight"] = ([16, 32], new float[16 * 32]) });
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("linear.weight").And.Contain("[16, 32]").And.Contain("[16, 64]"));
        Assert.That(e.TensorName, Is.EqualTo("1_Dense/linear.weight"));
    }

    [Test]
    public void DenseWhoseInFeaturesDisagreeWithTheModernBertHiddenSizeFails()
    {
        using var f = new TempFolder().CopyFrom(TestPaths.Fixture("goldens", "modernbert"), "config.json", "model.safetensors");
        File.WriteAllText(f.File("modules.json"),
            """[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Dense","type":"pylate.models.Dense.Dense"}]""");
        Directory.CreateDirectory(f.File("1_Dense"));
        File.WriteAllText(f.File("1_Dense/config.json"), """{"in_features":768,"out_features":128,"bias":false,"activation_function":"torch.nn.modules.linear.Identity"}""");
        SafeTensorsWriter.WriteF32(f.File("1_Dense/model.safetensors"), new Dictionary<string, (long[], float[])> { ["linear.weight"] = ([128, 768], new float[128 * 768]) });
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("in_features").And.Contain("768").And.Contain("64"));
    }

    [Test]
    public void ModernBertNormBiasFlagRequiresTheBiasTensors()
    {
        var src = TestPaths.Fixture("goldens", "modernbert");
        using var f = new TempFolder().CopyFrom(src, "model.safetensors");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        json["norm_bias"] = true;
        File.WriteAllText(f.File("config.json"), json.ToJsonString());
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.EqualTo("embeddings.norm.bias"));
        Assert.That(e.Message, Does.Contain("missing"));
    }

    [Test]
    public void ModernBertLayerZeroAttnNormIsUnexpected()
    {
        var src = TestPaths.Fixture("goldens", "modernbert");
        var tensors = Checkpoints.ReadAll(src);
        tensors["layers.0.attn_norm.weight"] = ([64], Enumerable.Repeat(1f, 64).ToArray());
        using var f = new TempFolder().CopyFrom(src, "config.json");
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.EqualTo("layers.0.attn_norm.weight"));
        Assert.That(e.Message, Does.Contain("unexpected"));
    }

    [TestCase("layer_types", """["full_attention","sliding_attention","chunked_attention","full_attention"]""", "chunked_attention")]
    [TestCase("layer_types", """["full_attention","sliding_attention"]""", "num_hidden_layers")]
    [TestCase("rope_parameters", """{"full_attention":{"rope_type":"yarn","rope_theta":160000.0,"factor":4.0},"sliding_attention":{"rope_type":"default","rope_theta":10000.0}}""", "rope_parameters.full_attention.rope_type")]
    [TestCase("rope_parameters", """{"full_attention":{"rope_type":"default","rope_theta":"big"}}""", "rope_parameters.full_attention.rope_theta")]
    [TestCase("norm_bias", "\"no\"", "norm_bias")]
    [TestCase("hidden_activation", "\"swiglu\"", "swiglu")]
    [TestCase("local_attention", "0", "local_attention")]
    public void BadModernBertConfigFieldIsNamed(string field, string value, string expected)
    {
        var src = TestPaths.Fixture("goldens", "modernbert");
        using var f = new TempFolder().CopyFrom(src, "model.safetensors");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(src, "config.json")))!.AsObject();
        json[field] = System.Text.Json.Nodes.JsonNode.Parse(value);
        File.WriteAllText(f.File("config.json"), json.ToJsonString());
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain(expected));
        Assert.That(e.FilePath, Does.EndWith("config.json"));
    }

    /// <summary>Wrongly typed JSON fields are a ModelLoadException naming the file and the field, never an InvalidOperationException.</summary>
    [TestCase("modules.json", """[{"idx":0,"name":"0","path":"","type":5}]""", "modules[0].type")]
    [TestCase("modules.json", """[{"idx":0,"name":"0","path":7,"type":"sentence_transformers.models.Transformer"}]""", "modules[0].path")]
    [TestCase("modules.json", """[3]""", "modules[0]")]
    [TestCase("modules.json", """{"a": 1}""", "JSON array")]
    [TestCase("config.json", """{"architectures": [123], "model_type": "bert"}""", "architectures")]
    public void WronglyTypedJsonFieldsAreNamed(string file, string json, string field)
    {
        using var f = FolderWith(_ => { });
        File.WriteAllText(f.File(file), json);
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain(file).And.Contain(field));
    }

    /// <summary>A module path outside the model folder is refused, as shard paths are.</summary>
    [TestCase("../outside")]
    [TestCase("/tmp")]
    public void ModulePathsStayInsideTheFolder(string path)
    {
        using var f = FolderWith(_ => { });
        File.WriteAllText(f.File("modules.json"),
            $$"""[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"{{path}}","type":"sentence_transformers.models.Dense"}]""");
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("modules[1].path").And.Contain("inside the model folder"));
    }
}
