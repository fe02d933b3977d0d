using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Tests.Support;
using TokenEmbed.Tests.Tokenization;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// Each family end to end as a hub folder has it: the golden model's weights with its embedding table grown to the real
/// tokenizer's vocabulary (seeded rows), plus that tokenizer's files. Text prompts must give Hugging Face's ids (the
/// tokenizer goldens) and the same vectors as those ids given directly, batched (with each tokenizer's real pad id) or alone.
/// </summary>
[NonParallelizable]
public sealed class HubLayoutTests
{
    public static readonly object[] Cases =
    [
        new object[] { "modernbert", "embeddings.tok_embeddings.weight", "modernbert", new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" } },
        new object[] { "xlm_roberta", "embeddings.word_embeddings.weight", "xlmr-unigram-proxy", new[] { "tokenizer.json" } },
        new object[] { "qwen3", "embed_tokens.weight", "qwen3", new[] { "tokenizer.json", "tokenizer_config.json" } },
    ];

    [TestCaseSource(nameof(Cases))]
    public void TextPromptsRunThroughTheRealTokenizer(string golden, string embeddingKey, string tokenizer, string[] tokenizerFiles)
    {
        var goldenFolder = TestPaths.Fixture("goldens", golden);
        var tokFolder = TestPaths.Fixture("tokenizers", tokenizer);
        var cases = GoldenCase.Load(tokenizer).Where(c => c.Ids.Length is > 0 and <= 30).Take(8).ToArray();
        var vocab = TokenEmbed.Tokenization.TokenizerLoader.FromFolder(tokFolder)!.VocabSize;

        using var f = new TempFolder().CopyFrom(tokFolder, tokenizerFiles);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(goldenFolder, "config.json")))!.AsObject();
        config["vocab_size"] = vocab;
        File.WriteAllText(f.File("config.json"), config.ToJsonString());
        var tensors = Checkpoints.ReadAll(goldenFolder);
        var (shape, table) = tensors[embeddingKey];
        var grown = Reference.Gaussian(vocab * (int)shape[1], seed: 11, scale: 0.05);
        Array.Copy(table, grown, table.Length);
        tensors[embeddingKey] = ([vocab, shape[1]], grown);
        if (tensors.ContainsKey("lm_head.weight")) tensors.Remove("lm_head.weight");
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);

        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var byText = llm.Encode(cases.Select(c => c.Text).ToArray(), PoolingTask.TokenEmbed);
        var max = 0f;
        for (var i = 0; i < cases.Length; i++)
        {
            Assert.That(byText[i].PromptTokenIds, Is.EqualTo(cases[i].Ids), $"{cases[i].Name}: ids");
            var alone = llm.Encode(Prompt.FromTokenIds(cases[i].Ids), PoolingTask.TokenEmbed)[0];
            Assert.That(byText[i].Outputs.Shape, Is.EqualTo(alone.Outputs.Shape));
            max = Math.Max(max, Reference.MaxAbsDiff(byText[i].Outputs.Data, alone.Outputs.Data));
        }
        TestContext.Out.WriteLine($"{golden} + {tokenizer} tokenizer: {cases.Length} texts, batched text vs single ids max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
    }
}
