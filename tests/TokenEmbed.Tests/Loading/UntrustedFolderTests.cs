using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json.Nodes;
using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Loading;

/// <summary>
/// Model folders as an attacker would write them, through the public API: every case is a typed exception naming the
/// file, field or tensor — no multi-GB allocation, no process death, no hang, no silently wrong vectors.
/// </summary>
[NonParallelizable]
public sealed class UntrustedFolderTests
{
    private static string Golden => TestPaths.Fixture("goldens", "bert");

    private static TempFolder Copy(Action<JsonObject>? editConfig = null)
    {
        var f = new TempFolder().CopyFrom(Golden, "config.json", "model.safetensors");
        if (editConfig != null)
        {
            var json = JsonNode.Parse(File.ReadAllText(f.File("config.json")))!.AsObject();
            editConfig(json);
            File.WriteAllText(f.File("config.json"), json.ToJsonString());
        }
        return f;
    }

    private static ModelLoadException LoadFails(string path) =>
        Assert.Throws<ModelLoadException>(() => new Llm(path, new LlmOptions { Device = "cpu" }).Dispose())!;

    /// <summary>Loads <paramref name="f"/> expecting a failure, and measures the time and the process memory it took.</summary>
    private static ModelLoadException LoadFailsCheaply(TempFolder f, string what)
    {
        GC.Collect();
        var before = Process.GetCurrentProcess().WorkingSet64;
        var sw = Stopwatch.StartNew();
        var e = LoadFails(f.Path);
        sw.Stop();
        GC.Collect();
        var grown = Process.GetCurrentProcess().WorkingSet64 - before;
        TestContext.Out.WriteLine($"{what}: refused in {sw.Elapsed.TotalMilliseconds:F0} ms, working set +{grown / (1 << 20)} MB: {e.Message}");
        Assert.That(grown, Is.LessThan(256L << 20), "no large allocation");
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), "no hang (the time is reported above)");
        return e;
    }

    [TestCase("num_hidden_layers", 100000)]
    [TestCase("num_hidden_layers", 1000000)]
    [TestCase("hidden_size", 16384)]
    [TestCase("vocab_size", 2000000000)]
    [TestCase("max_position_embeddings", 20000000)]
    [TestCase("intermediate_size", 1000000000)]
    [TestCase("intermediate_size", 4000000)]
    [TestCase("num_attention_heads", 7)]
    public void HugeOrWrongConfigSizesAreRefusedBeforeAllocating(string field, long value)
    {
        using var f = Copy(c => c[field] = value);
        var e = LoadFailsCheaply(f, $"{field} = {value}");
        // Either the field itself is named (limits, layer count), or the tensor whose shape it contradicts.
        Assert.That(e.Message.Contains(field) || e.TensorName != null, Is.True, e.Message);
        Assert.That(e.Message, Does.Contain("config.json").Or.Contain("model.safetensors"));
    }

    [Test]
    public void AFloatTensorRelabelledAsIntegerIsRefused()
    {
        using var f = Copy();
        var bytes = File.ReadAllBytes(f.File("model.safetensors"));
        var n = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = System.Text.Encoding.UTF8.GetString(bytes, 8, n);
        var at = header.IndexOf("\"F32\"", StringComparison.Ordinal);
        Assert.That(at, Is.GreaterThan(0));
        System.Text.Encoding.UTF8.GetBytes("\"I32\"").CopyTo(bytes, 8 + at);
        File.WriteAllBytes(f.File("model.safetensors"), bytes);
        var e = LoadFails(f.Path);
        Assert.That(e.TensorName, Is.Not.Null);
        Assert.That(e.Message, Does.Contain("I32").And.Contain("floating-point"));
    }

    [TestCase(1)]
    [TestCase(4)]
    public void AShrunkHeaderLengthIsRefused(int by)
    {
        using var f = Copy();
        var bytes = File.ReadAllBytes(f.File("model.safetensors"));
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, BinaryPrimitives.ReadUInt64LittleEndian(bytes) - (ulong)by);
        File.WriteAllBytes(f.File("model.safetensors"), bytes);
        var e = LoadFails(f.Path);
        Assert.That(e.FilePath, Does.EndWith("model.safetensors"));
    }

    [Test]
    public void AFifoInPlaceOfTheWeightsDoesNotBlock()
    {
        if (!OperatingSystem.IsLinux()) Assert.Ignore("mkfifo is Linux-only here");
        using var f = new TempFolder().CopyFrom(Golden, "config.json");
        using (var p = Process.Start("mkfifo", f.File("model.safetensors"))) p.WaitForExit();
        var load = Task.Run(() => LoadFails(f.Path));
        Assert.That(load.Wait(TimeSpan.FromSeconds(20)), Is.True, "loading must not block on a FIFO");
        Assert.That(load.Result.Message, Does.Contain("model.safetensors"));
    }

    [Test]
    public void AWeightFileLinkedFromOutsideTheFolderIsRefused()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("symbolic links need privileges on Windows");
        using var outside = new TempFolder().CopyFrom(Golden, "model.safetensors");
        using var f = new TempFolder().CopyFrom(Golden, "config.json");
        File.CreateSymbolicLink(f.File("model.safetensors"), outside.File("model.safetensors"));
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("outside the model folder"));
    }

    [Test]
    public void ADenseFolderLinkedFromOutsideIsRefused()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("symbolic links need privileges on Windows");
        using var outside = new TempFolder();
        File.WriteAllText(outside.File("config.json"), """{"in_features":64,"out_features":8,"bias":false}""");
        SafeTensorsWriter.WriteF32(outside.File("model.safetensors"), new Dictionary<string, (long[], float[])> { ["linear.weight"] = ([8, 64], new float[8 * 64]) });
        using var f = Copy();
        Directory.CreateSymbolicLink(f.File("1_Dense"), outside.Path);
        File.WriteAllText(f.File("modules.json"),
            """[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Dense","type":"pylate.models.Dense.Dense"}]""");
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("outside the model folder"));
    }

    /// <summary>The Hugging Face cache layout (snapshot files are relative links into blobs/) loads, and gives the same vectors.</summary>
    [Test]
    public void AHubCacheSnapshotOfLinksIntoBlobsLoads()
    {
        if (OperatingSystem.IsWindows()) Assert.Ignore("symbolic links need privileges on Windows");
        using var cache = new TempFolder();
        var repo = Path.Combine(cache.Path, "models--org--bert");
        var blobs = Directory.CreateDirectory(Path.Combine(repo, "blobs")).FullName;
        var snapshot = Directory.CreateDirectory(Path.Combine(repo, "snapshots", "0123abcd")).FullName;
        foreach (var name in new[] { "config.json", "model.safetensors" })
        {
            var blob = Path.Combine(blobs, "sha-" + name.Replace('.', '-'));
            File.Copy(Path.Combine(Golden, name), blob);
            File.CreateSymbolicLink(Path.Combine(snapshot, name), Path.Combine("..", "..", "blobs", Path.GetFileName(blob)));
        }
        using var viaLinks = new Llm(snapshot, new LlmOptions { Device = "cpu" });
        using var direct = new Llm(Golden, new LlmOptions { Device = "cpu" });
        var p = Prompt.FromTokenIds([2, 7, 11, 5]);
        Assert.That(viaLinks.Encode(p, PoolingTask.TokenEmbed)[0].Outputs.Data, Is.EqualTo(direct.Encode(p, PoolingTask.TokenEmbed)[0].Outputs.Data));
    }

    [Test]
    public void ATokenizerWithAHugeTokenIdIsRefused()
    {
        using var f = Copy();
        File.WriteAllText(f.File("tokenizer.json"),
            """{"version":"1.0","model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":100,"vocab":{"[UNK]":0,"a":1000000000}}}""");
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("tokenizer.json").And.Contain("1000000000"));
    }

    [TestCase(-1.0)]
    [TestCase(-1e-12)]
    public void ANegativeNormEpsilonIsRefused(double eps)
    {
        using var f = Copy(c => c["layer_norm_eps"] = eps);
        var e = LoadFails(f.Path);
        Assert.That(e.Message, Does.Contain("layer_norm_eps"));
    }

    [Test]
    public void NaNWeightsFailAtEncodeNamingThePrompt()
    {
        using var f = new TempFolder();
        var tensors = Checkpoints.ReadAll(Golden);
        var (shape, data) = tensors["encoder.layer.1.output.dense.weight"];
        data[3] = float.NaN;
        SafeTensorsWriter.WriteF32(f.File("model.safetensors"), tensors);
        Checkpoints.WriteConfig(Golden, f.Path, "BertModel");
        using var llm = new Llm(f.Path, new LlmOptions { Device = "cpu" });
        var e = Assert.Throws<InvalidOperationException>(() => llm.Encode([Prompt.FromTokenIds([2, 5]), Prompt.FromTokenIds([2, 7, 9])], PoolingTask.TokenEmbed))!;
        Assert.That(e.Message, Does.Contain("Prompt 0").Or.Contain("Prompt 1"));
        Assert.That(e.Message, Does.Contain("non-finite"));
        Assert.That(llm.Scheduler.InlineRounds, Is.EqualTo(1), "the synchronous call ran inline, and its error still names the prompt");
        var queued = Assert.ThrowsAsync<InvalidOperationException>(() => llm.EncodeAsync([Prompt.FromTokenIds([2, 5])], PoolingTask.TokenEmbed))!;
        Assert.That(queued.Message, Does.Contain("Prompt 0").And.Contain("non-finite"), "the same through the runner");
    }

    [Test]
    public void MaxSimRejectsNonFiniteValuesAndBadShapes()
    {
        var good = new PoolingOutput([1f, 0f, 0f, 1f], [2, 2]);
        Assert.That(LateInteraction.MaxSim(good, good), Is.EqualTo(2f));
        Assert.Throws<ArgumentException>(() => LateInteraction.MaxSim(good, new PoolingOutput([float.NaN, 0f], [1, 2])));
        Assert.Throws<ArgumentException>(() => LateInteraction.MaxSim(new PoolingOutput([float.PositiveInfinity, 0f], [1, 2]), good));
        Assert.Throws<ArgumentException>(() => LateInteraction.MaxSim(good, new PoolingOutput([1f, 0f, 0f], [1, 3])), "dims differ");
        Assert.Throws<ArgumentException>(() => LateInteraction.MaxSim(good, new PoolingOutput([1f, 0f, 0f], [2, 2])), "shape and data disagree");
        Assert.Throws<ArgumentException>(() => LateInteraction.MaxSim(good, new PoolingOutput([1f, 0f], [2])), "not token embeddings");
        Assert.Throws<ArgumentException>(() => LateInteraction.MaxSim(good, new PoolingOutput([], [0, 2])), "no tokens");
    }
}
