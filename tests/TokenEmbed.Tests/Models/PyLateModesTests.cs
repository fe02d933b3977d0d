using NUnit.Framework;
using TokenEmbed.Models;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>
/// PyLate's query and document encoding (pylate/models/colbert.py tokenize / encode) on all-MiniLM-L6-v2 in HF_ColBERT
/// layout. The expected ids and masks are written out by hand from PyLate's rules with bert-base-uncased ids ([CLS] 101,
/// [SEP] 102, [MASK] 103, [unused0] 1, [unused1] 2, hello 7592, world 2088, "," 1010, "!" 999); the vectors are checked
/// against the model run on exactly those ids and masks.
/// </summary>
[NonParallelizable]
public sealed class PyLateModesTests
{
    private const int Dim = 48;

    private static TempFolder Build(string? settings = null, string? artifact = null)
    {
        var mini = TestPaths.MiniLm;
        var f = new TempFolder().CopyFrom(mini, Checkpoints.TokenizerFiles);
        Checkpoints.WriteConfig(mini, f.Path, "HF_ColBERT");
        var tensors = Checkpoints.ReadAll(mini);
        tensors["linear.weight"] = ([Dim, 384], Reference.Gaussian(Dim * 384, 9, 0.05));
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        if (settings != null) File.WriteAllText(f.File("config_sentence_transformers.json"), settings);
        if (artifact != null) File.WriteAllText(f.File("artifact.metadata"), artifact);
        return f;
    }

    /// <summary>The model run on <paramref name="ids"/> with <paramref name="mask"/>: normalize(linear(h)) per token (through the internals).</summary>
    private static float[][] Run(string folder, int[] ids, int[] mask)
    {
        using var model = PoolingModel.Load(folder, new LlmOptions { Device = "cpu" });
        using var scope = NewDisposeScope();
        using var _ = inference_mode();
        var t = ids.Length;
        var m = tensor(mask.Select(x => (long)x).ToArray(), [1, t]);
        var hidden = model.Backbone.Forward(new ModelInput(tensor(ids.Select(x => (long)x).ToArray(), [1, t]), m));
        var request = TokenEmbed.Pooling.PoolingRequest.Resolve(PoolingTask.TokenEmbed, null, model.Pooler);
        var o = model.Pooler.Pool(hidden, m, [ids], [request])[0];
        return Enumerable.Range(0, o.Shape[0]).Select(i => o.Row(i).ToArray()).ToArray();
    }

    private static int[] Query(params int[] content) => [101, 1, .. content, 102];

    [Test]
    public void AQueryGetsThePrefixAndUnattendedMaskExpansionToQueryLength()
    {
        using var f = Build();
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var o = llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0];
        int[] expected = [.. Query(7592, 2088), .. Enumerable.Repeat(103, 27)];
        Assert.That(o.PromptTokenIds, Is.EqualTo(expected), "[CLS] [unused0] hello world [SEP] + 27 × [MASK] = query_length 32");
        Assert.That(o.Outputs.Shape, Is.EqualTo(new[] { 32, Dim }), "every query vector is kept, the expansion's too");
        var reference = Run(f.Path, expected, [.. Enumerable.Repeat(1, 5), .. Enumerable.Repeat(0, 27)]);
        var max = Enumerable.Range(0, 32).Max(i => Reference.MaxAbsDiff(o.Outputs.Row(i), reference[i]));
        TestContext.Out.WriteLine($"PyLate query (expansion unattended) vs the model on those ids and mask: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));

        var plain = llm.Encode("hello world", PoolingTask.TokenEmbed)[0];
        Assert.That(plain.PromptTokenIds, Is.EqualTo(new[] { 101, 7592, 2088, 102 }), "Encode without a mode stays vLLM's");
    }

    [Test]
    public void AttendToExpansionTokensAttendsTheMasks()
    {
        using var f = Build("""{"query_prefix": "[unused0]", "query_length": 8, "attend_to_expansion_tokens": true}""");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var o = llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0];
        int[] expected = [.. Query(7592, 2088), 103, 103, 103];
        Assert.That(o.PromptTokenIds, Is.EqualTo(expected));
        var attended = Run(f.Path, expected, Enumerable.Repeat(1, 8).ToArray());
        var unattended = Run(f.Path, expected, [1, 1, 1, 1, 1, 0, 0, 0]);
        var max = Enumerable.Range(0, 8).Max(i => Reference.MaxAbsDiff(o.Outputs.Row(i), attended[i]));
        var other = Enumerable.Range(0, 8).Max(i => Reference.MaxAbsDiff(o.Outputs.Row(i), unattended[i]));
        TestContext.Out.WriteLine($"attended expansion: max |diff| = {max:E2} (vs the unattended run: {other:E2})");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
        Assert.That(other, Is.GreaterThan(1e-3f), "attending the masks changes the vectors");
    }

    [Test]
    public void WithoutExpansionAQueryKeepsItsTokens()
    {
        using var f = Build("""{"do_query_expansion": false, "query_prefix": "[unused0]"}""");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var o = llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0];
        Assert.That(o.PromptTokenIds, Is.EqualTo(Query(7592, 2088)));
        Assert.That(o.Outputs.Shape[0], Is.EqualTo(5));
    }

    [Test]
    public void ADocumentGetsItsPrefixTruncationAndSkiplist()
    {
        using var f = Build("""{"document_prefix": "[unused1]", "document_length": 6}""");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var o = llm.Encode("hello, world! and more", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0];
        // room 5 → [CLS] + 3 content tokens + [SEP], then [unused1] after [CLS].
        int[] expected = [101, 2, 7592, 1010, 2088, 102];
        Assert.That(o.PromptTokenIds, Is.EqualTo(expected));
        Assert.That(o.Outputs.Shape, Is.EqualTo(new[] { 5, Dim }), "the ',' vector is dropped (string.punctuation skiplist)");
        var reference = Run(f.Path, expected, Enumerable.Repeat(1, 6).ToArray());
        int[] kept = [0, 1, 2, 4, 5];
        var max = Enumerable.Range(0, 5).Max(i => Reference.MaxAbsDiff(o.Outputs.Row(i), reference[kept[i]]));
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
    }

    [Test]
    public void AnEmptyPrefixMeansNoneAndStanfordMetadataIsRead()
    {
        using (var f = Build("""{"query_prefix": "", "query_length": 6}"""))
        using (var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" }))
            Assert.That(llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0].PromptTokenIds,
                Is.EqualTo(new[] { 101, 7592, 2088, 102, 103, 103 }), "no prefix: the whole length is text and expansion");
        using (var f = Build(artifact: """{"query_token_id": "[unused0]", "doc_token_id": "[unused1]", "query_maxlen": 7, "doc_maxlen": 4, "attend_to_mask_tokens": false}"""))
        using (var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" }))
        {
            Assert.That(llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0].PromptTokenIds,
                Is.EqualTo(new[] { 101, 1, 7592, 2088, 102, 103, 103 }));
            Assert.That(llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0].PromptTokenIds,
                Is.EqualTo(new[] { 101, 2, 7592, 102 }));
        }
    }

    [Test]
    public void ScoreWithQueryModeIsMaxSimOfQueryAndDocumentEncodings()
    {
        using var f = Build();
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        string[] docs = ["ColBERT keeps one vector per token, and scores with MaxSim!", "Bread is made of flour."];
        var q = llm.Encode("how does colbert score?", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0].Outputs;
        var d = llm.Encode(docs, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document });
        var scores = llm.Score("how does colbert score?", docs, new PoolingParams { InputType = InputType.Query });
        for (var i = 0; i < docs.Length; i++)
            Assert.That(scores[i].Outputs.Score, Is.EqualTo(Reference.MaxSim(q.Data, d[i].Outputs.Data, Dim)).Within(1e-4));
        var plain = llm.Score("how does colbert score?", docs);
        Assert.That(plain[0].Outputs.Score, Is.Not.EqualTo(scores[0].Outputs.Score).Within(1e-3), "the modes change the score");
        Assert.That(() => llm.Score("a", docs, new PoolingParams { InputType = InputType.Document }), Throws.ArgumentException);
        Assert.That(() => llm.Encode("a", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query, TruncatePromptTokens = 4 }), Throws.ArgumentException);
    }

    [Test]
    public void ASkiplistWordOutsideTheVocabularyStandsForTheUnknownToken()
    {
        // PyLate maps skiplist words with convert_tokens_to_ids, which gives [UNK] (100) for a word that is not a token.
        using var f = Build("""{"document_prefix": "", "skiplist_words": ["notasingletoken", ","]}""");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var o = llm.Encode("hello \U0001F916, world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0];
        Assert.That(o.PromptTokenIds, Is.EqualTo(new[] { 101, 7592, 100, 1010, 2088, 102 }), "the robot emoji is [UNK] in bert-base-uncased");
        Assert.That(o.Outputs.Shape[0], Is.EqualTo(4), "[UNK] and ',' are dropped");
        using var g = Build("""{"document_prefix": "", "skiplist_words": [","]}""");
        using var plain = new Llm(g.Path, new LlmOptions { Device = "cpu" });
        Assert.That(plain.Encode("hello \U0001F916, world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0].Outputs.Shape[0],
            Is.EqualTo(5), "without an unknown word in the skiplist, [UNK] is kept");
    }

    [Test]
    public void PoolFactorPoolsDocumentsAfterTheSkiplistAndOnlyTheDocumentSideOfScore()
    {
        using var f = Build();
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        const string text = "ColBERT keeps one vector per token, and PyLate can pool the vectors of a document into clusters of similar tokens to save space.";
        var plain = llm.Encode(text, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0].Outputs;
        var pooled = llm.Encode(text, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document, PoolFactor = 2 })[0].Outputs;
        var expected = LateInteraction.PoolTokens(plain, 2, 1);
        TestContext.Out.WriteLine($"document: {plain.Shape[0]} vectors → {pooled.Shape[0]} with pool factor 2");
        Assert.That(pooled.Shape, Is.EqualTo(new[] { (plain.Shape[0] - 1) / 2 + 1, Dim }));
        Assert.That(pooled.Data, Is.EqualTo(expected.Data), "Encode pools the normalized, skiplist-filtered vectors");
        Assert.That(pooled.Row(pooled.Shape[0] - 1).ToArray(), Is.EqualTo(plain.Row(0).ToArray()), "the protected [CLS] vector comes last");
        var three = llm.Encode(text, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document, PoolFactor = 3, ProtectedTokens = 2 })[0].Outputs;
        Assert.That(three.Data, Is.EqualTo(LateInteraction.PoolTokens(plain, 3, 2).Data));

        var q = llm.Encode("how are documents pooled?", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0].Outputs;
        var score = llm.Score("how are documents pooled?", [text], new PoolingParams { InputType = InputType.Query, PoolFactor = 2 })[0].Outputs.Score;
        Assert.That(score, Is.EqualTo(Reference.MaxSim(q.Data, pooled.Data, Dim)).Within(1e-4), "queries are never pooled; documents are");

        Assert.That(() => llm.Encode(text, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query, PoolFactor = 2 }),
            Throws.ArgumentException.With.Message.Contains("PoolFactor"));
        Assert.That(() => llm.Encode(text, PoolingTask.TokenEmbed, new PoolingParams { PoolFactor = 2 }), Throws.ArgumentException);
        Assert.That(() => llm.Encode(text, PoolingTask.Embed, new PoolingParams { InputType = InputType.Document, PoolFactor = 2 }), Throws.ArgumentException);
        Assert.That(() => llm.Encode(text, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document, PoolFactor = 0 }),
            Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(() => llm.Encode(text, PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document, PoolFactor = 2, ProtectedTokens = -1 }),
            Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void ADecoderExpandsQueriesWithEos()
    {
        // The Qwen3 golden model widened to the real Qwen3 vocabulary (new random embeddings), with the real tokenizer: no
        // mask token, so queries are expanded with the EOS token (<|im_end|> 151645 in tokenizer_config.json).
        var golden = TestPaths.Fixture("goldens", "qwen3");
        var tokenizer = TestPaths.Fixture("tokenizers", "qwen3");
        using var f = new TempFolder().CopyFrom(tokenizer, "tokenizer.json", "tokenizer_config.json");
        const int vocab = 151669;
        var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(golden, "config.json")))!.AsObject();
        config["vocab_size"] = vocab;
        File.WriteAllText(f.File("config.json"), config.ToJsonString());
        var tensors = Checkpoints.ReadAll(golden);
        var embed = tensors.Keys.Single(k => k.EndsWith("embed_tokens.weight"));
        var hidden = (int)tensors[embed].Shape[1];
        tensors[embed] = ([vocab, hidden], Reference.Gaussian(vocab * hidden, 11, 0.02));
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        File.WriteAllText(f.File("config_sentence_transformers.json"), """{"query_prefix": "<|im_start|>", "document_prefix": "", "query_length": 8}""");

        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var o = llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0];
        int[] expected = [14990, 151644, 1879, 151645, 151645, 151645, 151645, 151645];
        Assert.That(o.PromptTokenIds, Is.EqualTo(expected), "hello, the prefix after the first token, world, then EOS to query_length");
        Assert.That(o.Outputs.Shape[0], Is.EqualTo(8));
        var reference = Run(f.Path, expected, [1, 1, 1, 0, 0, 0, 0, 0]);
        var max = Enumerable.Range(0, 8).Max(i => Reference.MaxAbsDiff(o.Outputs.Row(i), reference[i]));
        TestContext.Out.WriteLine($"decoder query (EOS expansion, unattended) vs the model on those ids and mask: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
        var d = llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0];
        Assert.That(d.PromptTokenIds, Is.EqualTo(new[] { 14990, 1879 }), "an empty document prefix inserts nothing");
    }

    /// <summary>
    /// A sentence-transformers v6 MultiVectorEncoder folder around MiniLM: the Transformer module's lengths and expansion
    /// flags in sentence_bert_config.json, text prompts as prefixes, a MultiVectorMask skiplist and a HierarchicalPooling
    /// module (pool factor 2), as sentence_transformers/multi_vector_encoder saves them.
    /// </summary>
    [Test]
    public void ASentenceTransformersV6FolderUsesItsModulesAndPrompts()
    {
        var mini = TestPaths.MiniLm;
        using var f = new TempFolder().CopyFrom(mini, [.. Checkpoints.TokenizerFiles, "config.json", "model.safetensors"]);
        var w = Reference.Gaussian(Dim * 384, 9, 0.05);
        Directory.CreateDirectory(f.File("1_Dense"));
        File.WriteAllText(f.File("1_Dense/config.json"), $$"""{"in_features": 384, "out_features": {{Dim}}, "bias": false, "activation_function": "torch.nn.modules.linear.Identity"}""");
        SafeTensorsWriter.WriteF32(f.File("1_Dense/model.safetensors"), new Dictionary<string, (long[], float[])> { ["linear.weight"] = ([Dim, 384], w) });
        Directory.CreateDirectory(f.File("2_MultiVectorMask"));
        File.WriteAllText(f.File("2_MultiVectorMask/config.json"), """{"skiplist_words": [","]}""");
        Directory.CreateDirectory(f.File("3_HierarchicalPooling"));
        File.WriteAllText(f.File("3_HierarchicalPooling/config.json"), """{"pool_factor": 2, "protected_tokens": 1}""");
        File.WriteAllText(f.File("modules.json"), """
            [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
             {"idx": 1, "name": "1", "path": "1_Dense", "type": "sentence_transformers.base.modules.dense.Dense"},
             {"idx": 2, "name": "2", "path": "2_MultiVectorMask", "type": "sentence_transformers.multi_vector_encoder.modules.multi_vector_mask.MultiVectorMask"},
             {"idx": 3, "name": "3", "path": "3_HierarchicalPooling", "type": "sentence_transformers.multi_vector_encoder.modules.hierarchical_pooling.HierarchicalPooling"}]
            """);
        File.WriteAllText(f.File("sentence_bert_config.json"),
            """{"max_seq_length": 256, "query_length": 9, "document_length": 10, "do_query_expansion": true, "attend_to_expansion_tokens": false}""");
        File.WriteAllText(f.File("config_sentence_transformers.json"),
            """{"model_type": "MultiVectorEncoder", "prompts": {"query": "query: ", "document": "passage: "}, "default_prompt_name": null, "similarity_fn_name": "MaxSim"}""");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });

        var q = llm.Encode("hello world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Query })[0];
        var prompted = llm.Tokenize("query: hello world").ToArray();
        Assert.That(prompted, Has.Length.EqualTo(6), "[CLS] query : hello world [SEP]");
        Assert.That(q.PromptTokenIds, Is.EqualTo(prompted.Concat([103, 103, 103]).ToArray()), "the text prompt, no prefix id, [MASK] to query_length 9");
        var reference = Run(f.Path, q.PromptTokenIds.ToArray(), [1, 1, 1, 1, 1, 1, 0, 0, 0]);
        var max = Enumerable.Range(0, 9).Max(i => Reference.MaxAbsDiff(q.Outputs.Row(i), reference[i]));
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));

        var unpooled = llm.Encode("hello, world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document, PoolFactor = 1 })[0];
        var ids = llm.Tokenize("passage: hello, world").ToArray();
        Assert.That(unpooled.PromptTokenIds, Is.EqualTo(ids));
        Assert.That(unpooled.Outputs.Shape[0], Is.EqualTo(ids.Length - 1), "the MultiVectorMask skiplist drops ','");
        var pooled = llm.Encode("hello, world", PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0].Outputs;
        var expected = TokenEmbed.Pooling.HierarchicalPooling.Pool(unpooled.Outputs, 2, 1, sentenceTransformers: true);
        Assert.That(pooled.Shape[0], Is.EqualTo(1 + (ids.Length - 2) / 2), "the HierarchicalPooling module pools every document");
        Assert.That(pooled.Data, Is.EqualTo(expected.Data));
        Assert.That(pooled.Row(0).ToArray(), Is.EqualTo(unpooled.Outputs.Row(0).ToArray()), "sentence-transformers keeps the protected vector first");
    }
}
