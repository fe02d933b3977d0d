using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using NUnit.Framework;
using TokenEmbed.Server;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Server;

/// <summary>
/// The HTTP server in memory (TestServer) over all-MiniLM-L6-v2 as an HF_ColBERT model: vLLM's JSON in and out, results equal
/// to calling the library directly, and bad requests answered with 4xx while the server keeps serving.
/// </summary>
[NonParallelizable]
public sealed class ServerTests
{
    private TempFolder _folder = null!;
    private Llm _llm = null!;
    private WebApplication _app = null!;
    private HttpClient _http = null!;
    private const string Name = "colbert-mini";

    [OneTimeSetUp]
    public async Task Start()
    {
        var mini = TestPaths.MiniLm;
        _folder = new TempFolder().CopyFrom(mini, Checkpoints.TokenizerFiles);
        Checkpoints.WriteConfig(mini, _folder.Path, "HF_ColBERT");
        var tensors = Checkpoints.ReadAll(mini);
        tensors["linear.weight"] = ([48, 384], Reference.Gaussian(48 * 384, 5, 0.05));
        SafeTensorsWriter.WriteF32(_folder.File("model.safetensors"), tensors);
        _llm = new Llm(_folder.Path, new LlmOptions { Device = "cpu" });
        _app = ServerApp.Create(new ServerOptions { Model = _folder.Path, ServedModelName = Name, MaxInputsPerRequest = 64 }, _llm,
            b => b.WebHost.UseTestServer());
        await _app.StartAsync();
        _http = _app.GetTestClient();
    }

    [OneTimeTearDown]
    public async Task Stop()
    {
        _http?.Dispose();
        if (_app != null) await _app.DisposeAsync();
        _llm?.Dispose();
        _folder?.Dispose();
    }

    private async Task<(HttpStatusCode Status, JsonElement Body)> Post(string path, string json, string? key = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = new StringContent(json, Encoding.UTF8, "application/json") };
        if (key != null) request.Headers.Authorization = new("Bearer", key);
        using var response = await _http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return (response.StatusCode, text.Length == 0 ? default : JsonDocument.Parse(text).RootElement.Clone());
    }

    private static float[] Floats(JsonElement e) => e.ValueKind == JsonValueKind.Array && e.GetArrayLength() > 0 && e[0].ValueKind == JsonValueKind.Array
        ? e.EnumerateArray().SelectMany(r => r.EnumerateArray().Select(v => v.GetSingle())).ToArray()
        : e.EnumerateArray().Select(v => v.GetSingle()).ToArray();

    [Test]
    public async Task PoolingTokenEmbedEqualsTheLibrary()
    {
        var (status, body) = await Post("/pooling", $$"""{"model": "{{Name}}", "input": ["late interaction", "ColBERT scores with MaxSim."], "task": "token_embed"}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        Assert.That(body.GetProperty("object").GetString(), Is.EqualTo("list"));
        Assert.That(body.GetProperty("id").GetString(), Does.StartWith("pool-"));
        var expected = _llm.Encode(["late interaction", "ColBERT scores with MaxSim."], PoolingTask.TokenEmbed);
        var data = body.GetProperty("data");
        Assert.That(data.GetArrayLength(), Is.EqualTo(2));
        for (var i = 0; i < 2; i++)
        {
            Assert.That(data[i].GetProperty("index").GetInt32(), Is.EqualTo(i));
            Assert.That(data[i].GetProperty("object").GetString(), Is.EqualTo("pooling"));
            Assert.That(data[i].GetProperty("data").GetArrayLength(), Is.EqualTo(expected[i].Outputs.Shape[0]), "one row per token");
            Assert.That(Floats(data[i].GetProperty("data")), Is.EqualTo(expected[i].Outputs.Data).Within(1e-6f));
        }
        var tokens = expected.Sum(o => o.PromptTokenIds.Count);
        Assert.That(body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32(), Is.EqualTo(tokens));
    }

    [Test]
    public async Task PoolingEmbedAsBase64AndTokenIdsWithParameters()
    {
        var (status, body) = await Post("/pooling", """{"input": [[101, 7592, 102], [101, 2088, 2003, 102]], "task": "embed", "dimensions": 16, "normalize": false, "encoding_format": "base64"}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        var expected = _llm.Encode([Prompt.FromTokenIds([101, 7592, 102]), Prompt.FromTokenIds([101, 2088, 2003, 102])], PoolingTask.Embed,
            new PoolingParams { Dimensions = 16, Normalize = false });
        for (var i = 0; i < 2; i++)
        {
            var bytes = Convert.FromBase64String(body.GetProperty("data")[i].GetProperty("data").GetString()!);
            var floats = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray();
            Assert.That(floats, Is.EqualTo(expected[i].Outputs.Data));
        }
    }

    [Test]
    public async Task OpenAiEmbeddings()
    {
        var (status, body) = await Post("/v1/embeddings", """{"model": "colbert-mini", "input": "hello world"}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        var e = body.GetProperty("data")[0];
        Assert.That(e.GetProperty("object").GetString(), Is.EqualTo("embedding"));
        Assert.That(Floats(e.GetProperty("embedding")), Is.EqualTo(_llm.Encode("hello world", PoolingTask.Embed)[0].Outputs.Data).Within(1e-6f));
    }

    [TestCase("queries", "documents")]
    [TestCase("text_1", "text_2")]
    [TestCase("data_1", "data_2")]
    public async Task ScoreAcceptsEverySpelling(string q, string d)
    {
        string[] docs = ["ColBERT scores with MaxSim.", "Paris is in France."];
        var (status, body) = await Post("/score", $$"""{"{{q}}": "late interaction retrieval", "{{d}}": ["{{docs[0]}}", "{{docs[1]}}"]}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        var expected = _llm.Score("late interaction retrieval", docs);
        for (var i = 0; i < 2; i++)
        {
            Assert.That(body.GetProperty("data")[i].GetProperty("object").GetString(), Is.EqualTo("score"));
            Assert.That(body.GetProperty("data")[i].GetProperty("score").GetSingle(), Is.EqualTo(expected[i].Outputs.Score).Within(1e-5f));
        }
    }

    [TestCase("input_type")]
    [TestCase("embedding_mode")]
    public async Task QueryAndDocumentModesOverHttp(string field)
    {
        string[] docs = ["ColBERT scores with MaxSim!", "Paris is in France."];
        var (status, body) = await Post("/score", $$"""{"queries": "how does colbert score?", "documents": ["{{docs[0]}}", "{{docs[1]}}"], "{{field}}": "query"}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        var expected = _llm.Score("how does colbert score?", docs, new PoolingParams { InputType = InputType.Query });
        for (var i = 0; i < 2; i++)
            Assert.That(body.GetProperty("data")[i].GetProperty("score").GetSingle(), Is.EqualTo(expected[i].Outputs.Score).Within(1e-5f));
        var (ok, pooled) = await Post("/pooling", $$"""{"input": "{{docs[0]}}", "task": "token_embed", "{{field}}": "document"}""");
        Assert.That(ok, Is.EqualTo(HttpStatusCode.OK));
        var doc = _llm.Encode(docs[0], PoolingTask.TokenEmbed, new PoolingParams { InputType = InputType.Document })[0].Outputs;
        Assert.That(pooled.GetProperty("data")[0].GetProperty("data").GetArrayLength(), Is.EqualTo(doc.Shape[0]), "the '!' vector is dropped");
        var (okPooled, small) = await Post("/pooling", $$"""{"input": "{{docs[0]}}", "task": "token_embed", "{{field}}": "document", "pool_factor": 2}""");
        Assert.That(okPooled, Is.EqualTo(HttpStatusCode.OK), small.ToString());
        Assert.That(small.GetProperty("data")[0].GetProperty("data").GetArrayLength(), Is.EqualTo((doc.Shape[0] - 1) / 2 + 1), "pool_factor 2 halves the vectors");
    }

    [Test]
    public async Task RerankSortsAndCuts()
    {
        string[] docs = ["Paris is in France.", "ColBERT scores with MaxSim.", "Bread is made of flour."];
        var (status, body) = await Post("/v1/rerank", $$"""{"query": "How does ColBERT score documents?", "documents": ["{{docs[0]}}", "{{docs[1]}}", "{{docs[2]}}"], "top_n": 2}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK), body.ToString());
        var expected = _llm.Score("How does ColBERT score documents?", docs).Select((s, i) => (i, s.Outputs.Score)).OrderByDescending(x => x.Score).Take(2).ToArray();
        var results = body.GetProperty("results");
        Assert.That(results.GetArrayLength(), Is.EqualTo(2));
        for (var k = 0; k < 2; k++)
        {
            Assert.That(results[k].GetProperty("index").GetInt32(), Is.EqualTo(expected[k].i));
            Assert.That(results[k].GetProperty("document").GetProperty("text").GetString(), Is.EqualTo(docs[expected[k].i]));
            Assert.That(results[k].GetProperty("relevance_score").GetSingle(), Is.EqualTo(expected[k].Score).Within(1e-5f));
        }
    }

    [Test]
    public async Task ModelsTokenizeHealthMetrics()
    {
        var models = await _http.GetFromJsonAsync<JsonElement>("/v1/models");
        Assert.That(models.GetProperty("data")[0].GetProperty("id").GetString(), Is.EqualTo(Name));
        var (status, tok) = await Post("/tokenize", """{"prompt": "hello world"}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(tok.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()), Is.EqualTo(_llm.Tokenize("hello world")));
        Assert.That((await _http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        await Post("/pooling", """{"input": "warm the counters"}""");
        var metrics = await _http.GetStringAsync("/metrics");
        Assert.That(metrics, Does.Contain("tokenembed_batches").And.Contain("tokenembed_prompt_tokens_total"));
    }

    [TestCase("/pooling", "{not json", HttpStatusCode.BadRequest, null)]
    [TestCase("/pooling", "[1, 2]", HttpStatusCode.BadRequest, null)]
    [TestCase("/pooling", """{"task": "token_embed"}""", HttpStatusCode.BadRequest, "input")]
    [TestCase("/pooling", """{"input": "a", "task": "classify"}""", HttpStatusCode.BadRequest, "task")]
    [TestCase("/pooling", """{"input": "a", "dimensions": 4096}""", HttpStatusCode.BadRequest, null)]
    [TestCase("/pooling", """{"input": [[101, 999999]]}""", HttpStatusCode.BadRequest, null)]
    [TestCase("/pooling", """{"input": "a", "input_type": "sideways"}""", HttpStatusCode.BadRequest, "input_type")]
    [TestCase("/score", """{"queries": "a", "documents": ["b"], "input_type": "document"}""", HttpStatusCode.BadRequest, null)]
    [TestCase("/pooling", """{"input": "a", "task": "token_embed", "pool_factor": 2}""", HttpStatusCode.BadRequest, null)]
    [TestCase("/pooling", """{"input": "a", "task": "token_embed", "input_type": "document", "pool_factor": 0}""", HttpStatusCode.BadRequest, null)]
    [TestCase("/pooling", """{"model": "other", "input": "a"}""", HttpStatusCode.NotFound, "model")]
    [TestCase("/score", """{"queries": ["a", "b"], "documents": ["c", "d", "e"]}""", HttpStatusCode.BadRequest, null)]
    [TestCase("/rerank", """{"query": "a", "documents": []}""", HttpStatusCode.BadRequest, "documents")]
    [TestCase("/nowhere", "{}", HttpStatusCode.NotFound, null)]
    public async Task BadRequestsGetErrorsAndTheServerKeepsServing(string path, string json, HttpStatusCode expected, string? param)
    {
        var (status, body) = await Post(path, json);
        Assert.That(status, Is.EqualTo(expected), body.ToString());
        var error = body.GetProperty("error");
        Assert.That(error.GetProperty("message").GetString(), Is.Not.Empty);
        Assert.That(error.GetProperty("code").GetInt32(), Is.EqualTo((int)expected));
        if (param != null) Assert.That(error.GetProperty("param").GetString(), Is.EqualTo(param));
        var (ok, _) = await Post("/pooling", """{"input": "still serving"}""");
        Assert.That(ok, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task OpenApiDocumentListsTheEndpoints()
    {
        var doc = await _http.GetFromJsonAsync<JsonElement>("/openapi/v1.json");
        var paths = doc.GetProperty("paths").EnumerateObject().Select(p => p.Name).ToArray();
        Assert.That(paths, Is.SupersetOf(new[] { "/pooling", "/score", "/rerank", "/v1/embeddings", "/v1/models", "/tokenize", "/health" }));
    }

    [Test]
    public async Task TooManyInputsIs413()
    {
        var many = string.Join(",", Enumerable.Repeat("\"x\"", 65));
        var (status, body) = await Post("/pooling", $$"""{"input": [{{many}}]}""");
        Assert.That(status, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge), body.ToString());
    }

    [Test]
    public async Task ConcurrentRequestsAllSucceedWithTheirOwnResults()
    {
        var texts = Enumerable.Range(0, 16).Select(i => $"request number {i} about {(i % 2 == 0 ? "retrieval" : "bread")}").ToArray();
        var expected = texts.Select(t => _llm.Encode(t, PoolingTask.TokenEmbed, new PoolingParams { Dimensions = 8 })[0].Outputs.Data).ToArray();
        var responses = await Task.WhenAll(texts.Select(t => Post("/pooling", $$"""{"input": "{{t}}", "dimensions": 8}""")));
        for (var i = 0; i < texts.Length; i++)
        {
            Assert.That(responses[i].Status, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(Floats(responses[i].Body.GetProperty("data")[0].GetProperty("data")), Is.EqualTo(expected[i]).Within(1e-5f));
        }
    }
}

/// <summary>The server as a real process on a loopback port: started as `tokenembed serve`, answering /health, /pooling and a bad request.</summary>
[NonParallelizable]
public sealed class ServerProcessTests
{
    [Test]
    public async Task ServeOnALoopbackPort()
    {
        var dll = Path.Combine(TestContext.CurrentContext.TestDirectory, "TokenEmbed.Server.dll");
        // The port is free when chosen but released before the server binds it; another socket may take it in between,
        // and then the server exits saying so, and another port is tried.
        for (var attempt = 1; ; attempt++)
        {
            var port = FreePort();
            var start = new System.Diagnostics.ProcessStartInfo("dotnet")
            {
                ArgumentList = { dll, "serve", TestPaths.Fixture("goldens", "bert"), "--port", port.ToString(), "--device", "cpu", "--served-model-name", "bert" },
                RedirectStandardOutput = true, RedirectStandardError = true,
            };
            using var process = System.Diagnostics.Process.Start(start)!;
            try
            {
                using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
                if (await WaitUntilHealthy(http, process, retryOnPortTaken: attempt < 5)) await Exercise(http);
                else continue;
                return;
            }
            finally
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
            }
        }
    }

    [Test]
    public async Task APortInUseIsAClearFailedStartNotACrash()
    {
        using var taken = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var dll = Path.Combine(TestContext.CurrentContext.TestDirectory, "TokenEmbed.Server.dll");
        var start = new System.Diagnostics.ProcessStartInfo("dotnet")
        {
            ArgumentList = { dll, "serve", TestPaths.Fixture("goldens", "bert"), "--port", port.ToString(), "--device", "cpu" },
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var process = System.Diagnostics.Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = process.StandardOutput.ReadToEndAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail("the server kept running on a port another socket holds");
        }
        var err = await stderr;
        Assert.That(process.ExitCode, Is.EqualTo(1), err);
        Assert.That(err, Does.Contain($"cannot listen on http://127.0.0.1:{port}: address already in use"));
        Assert.That(err, Does.Not.Contain("Unhandled exception"));
        Assert.That(await stdout, Does.Not.Contain("listening on"), "it says it listens only once it does");
    }

    /// <summary>True once /health answers; false when the server exited because its port was taken (and a retry is allowed).</summary>
    private static async Task<bool> WaitUntilHealthy(HttpClient http, System.Diagnostics.Process process, bool retryOnPortTaken)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            try
            {
                if ((await http.GetAsync("/health")).IsSuccessStatusCode) return true;
            }
            catch (HttpRequestException) { }
            if (process.HasExited)
            {
                var err = await process.StandardError.ReadToEndAsync() + await process.StandardOutput.ReadToEndAsync();
                if (retryOnPortTaken && err.Contains("address already in use", StringComparison.OrdinalIgnoreCase)) return false;
                Assert.Fail($"the server exited: {err}");
            }
            Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(60)), "the server did not come up");
            await Task.Delay(200);
        }
    }

    private static async Task Exercise(HttpClient http)
    {
        var ok = await http.PostAsync("/pooling", new StringContent("""{"model": "bert", "input": [[2, 5, 3]]}""", Encoding.UTF8, "application/json"));
        Assert.That(ok.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using var llm = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });
        var body = JsonDocument.Parse(await ok.Content.ReadAsStringAsync()).RootElement;
        var served = body.GetProperty("data")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.That(served, Is.EqualTo(llm.Encode(Prompt.FromTokenIds([2, 5, 3]), PoolingTask.Embed)[0].Outputs.Data).Within(1e-6f), "BertModel: Embed by default");
        var bad = await http.PostAsync("/pooling", new StringContent("""{"input": 5}""", Encoding.UTF8, "application/json"));
        Assert.That(bad.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
        Assert.That((await http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "still serving");
    }

    private static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>The API key guards every endpoint but /health.</summary>
[NonParallelizable]
public sealed class ServerApiKeyTests
{
    [Test]
    public async Task RequestsWithoutTheKeyAre401()
    {
        using var llm = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });
        await using var app = ServerApp.Create(new ServerOptions { Model = "bert", ApiKey = "secret" }, llm, b => b.WebHost.UseTestServer());
        await app.StartAsync();
        using var http = app.GetTestClient();
        var body = new StringContent("""{"input": [[2, 5, 3]]}""", Encoding.UTF8, "application/json");
        var denied = await http.PostAsync("/pooling", body);
        Assert.That(denied.StatusCode, Is.EqualTo(HttpStatusCode.Unauthorized));
        Assert.That(await denied.Content.ReadAsStringAsync(), Does.Contain("AuthenticationError"));
        Assert.That((await http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/pooling") { Content = new StringContent("""{"input": [[2, 5, 3]]}""", Encoding.UTF8, "application/json") };
        request.Headers.Authorization = new("Bearer", "secret");
        Assert.That((await http.SendAsync(request)).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task HealthIs503OnceTheEngineHasStopped()
    {
        var llm = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });
        await using var app = ServerApp.Create(new ServerOptions { Model = "bert" }, llm, b => b.WebHost.UseTestServer());
        await app.StartAsync();
        using var http = app.GetTestClient();
        Assert.That((await http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        llm.Dispose();
        Assert.That((await http.GetAsync("/health")).StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
        var r = await http.PostAsync("/pooling", new StringContent("""{"input": [[2, 5, 3]]}""", Encoding.UTF8, "application/json"));
        Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
    }

    [Test]
    public void ServeArgumentsParseLikeVllm()
    {
        var o = ServerOptions.Parse(["serve", "/models/x", "--host", "0.0.0.0", "--port", "9000", "--device", "cpu", "--max-batch-tokens", "4096", "--max-num-seqs", "1", "--served-model-name", "x", "--api-key", "k"]);
        Assert.That((o.Model, o.Host, o.Port, o.Device, o.MaxBatchTokens, o.Name, o.ApiKey), Is.EqualTo(("/models/x", "0.0.0.0", 9000, "cpu", (int?)4096, "x", "k")));
        Assert.That((o.ToLlmOptions().MaxBatchSize, o.ToLlmOptions().MaxBatchTokens), Is.EqualTo((1, 4096)));
        Assert.That(() => ServerOptions.Parse(["serve"]), Throws.ArgumentException);
        Assert.That(() => ServerOptions.Parse(["serve", "m", "--port", "x"]), Throws.ArgumentException.With.Message.Contains("--port"));
        Assert.That(() => ServerOptions.Parse(["serve", "m", "--bogus", "1"]), Throws.ArgumentException.With.Message.Contains("--bogus"));
    }
}
