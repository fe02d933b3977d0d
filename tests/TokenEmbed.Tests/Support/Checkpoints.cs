using TokenEmbed.Loading;

namespace TokenEmbed.Tests.Support;

/// <summary>Builds model folders for tests from existing checkpoints.</summary>
internal static class Checkpoints
{
    /// <summary>All tensors of a folder's checkpoint as float32.</summary>
    public static Dictionary<string, (long[] Shape, float[] Data)> ReadAll(string folder)
    {
        using var w = WeightSet.OpenCheckpoint(folder);
        return w.Names.ToDictionary(n => n, n => (w.Get(n).Shape, w.ReadAsFloat32(n)));
    }

    /// <summary>Writes config.json with the architectures replaced.</summary>
    public static void WriteConfig(string sourceFolder, string targetFolder, string architecture)
    {
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(sourceFolder, "config.json")))!.AsObject();
        json["architectures"] = new System.Text.Json.Nodes.JsonArray(architecture);
        File.WriteAllText(Path.Combine(targetFolder, "config.json"), json.ToJsonString());
    }

    public static readonly string[] TokenizerFiles = ["tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"];
}
