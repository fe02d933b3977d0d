using System.Net;
using System.Runtime.InteropServices;
using System.Text.Json;
using Prometheus;

namespace TokenEmbed.Server;

/// <summary>
/// vLLM's pooling HTTP API over one <see cref="Llm"/>: <c>/pooling</c>, <c>/score</c>, <c>/rerank</c> (also <c>/v1/rerank</c>,
/// <c>/v2/rerank</c>), OpenAI <c>/v1/embeddings</c>, <c>/v1/models</c>, <c>/tokenize</c>, <c>/health</c>, <c>/metrics</c>.
/// Request and response JSON follow vLLM's entrypoints; errors are <c>{"error": {...}}</c> with a 4xx status, and the server
/// keeps serving.
/// </summary>
public static class ServerApp
{
    private static readonly Gauge Batches = Metrics.CreateGauge("tokenembed_batches", "Forward batches run.");
    private static readonly Gauge Requests = Metrics.CreateGauge("tokenembed_requests", "Prompts run through the model.");
    private static readonly Counter PromptTokens = Metrics.CreateCounter("tokenembed_prompt_tokens_total", "Prompt tokens encoded.");
    private static readonly Gauge Queue = Metrics.CreateGauge("tokenembed_queue_length", "Prompts waiting for a batch.");
    private static readonly Gauge MeanBatch = Metrics.CreateGauge("tokenembed_mean_batch_size", "Prompts per forward batch, on average.");

    /// <summary>Builds the application (not started). <paramref name="configure"/> can adjust the builder (tests use an in-memory server).</summary>
    /// <param name="options">The serve options.</param>
    /// <param name="llm">The loaded model; the caller disposes it after the app stops.</param>
    /// <param name="configure">Optional builder configuration.</param>
    public static WebApplication Create(ServerOptions options, Llm llm, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls($"http://{(options.Host.Contains(':') ? $"[{options.Host}]" : options.Host)}:{options.Port}");
        builder.WebHost.ConfigureKestrel(k => k.Limits.MaxRequestBodySize = 64L << 20);
        builder.Services.AddOpenApi();
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapOpenApi();   // /openapi/v1.json

        Metrics.DefaultRegistry.AddBeforeCollectCallback(() =>
        {
            var c = llm.Scheduler.Counts;
            Batches.Set(c.Batches);
            Requests.Set(c.Requests);
            Queue.Set(llm.Scheduler.Queued);
            MeanBatch.Set(c.Batches == 0 ? 0 : (double)c.Requests / c.Batches);
        });

        app.Use(async (context, next) =>
        {
            var path = context.Request.Path.Value ?? "";
            if (options.ApiKey is { } key && path != "/health" && !path.StartsWith("/openapi", StringComparison.Ordinal) &&
                context.Request.Headers.Authorization.ToString() != $"Bearer {key}")
            {
                await Write(context, new ApiError(HttpStatusCode.Unauthorized, "Missing or wrong API key (Authorization: Bearer <key>)."));
                return;
            }
            try
            {
                await next(context);
            }
            catch (BadHttpRequestException e) when (e.StatusCode == StatusCodes.Status413PayloadTooLarge)
            {
                await Write(context, new ApiError(HttpStatusCode.RequestEntityTooLarge, e.Message));
            }
            catch (Exception e) when (!context.Response.HasStarted)
            {
                await Write(context, ApiError.From(e));
            }
        });
        app.UseHttpMetrics();

        app.MapGet("/health", () => llm.Scheduler.IsRunning ? Results.Ok() : Results.StatusCode(503));
        app.MapMetrics("/metrics");
        app.MapGet("/v1/models", () => Results.Json(new
        {
            @object = "list",
            data = new[] { new { id = options.Name, @object = "model", created = Now(), owned_by = "tokenembed", root = options.Model, max_model_len = llm.MaxModelLength } },
        }));
        app.MapPost("/tokenize", async (HttpContext c, CancellationToken _) =>
        {
            var body = await Body(c, options, llm);
            var prompt = RequestParsing.String(body, "prompt") ?? throw ApiError.Bad("'prompt' is required.", "prompt");
            var tokens = llm.Tokenize(prompt);
            return Results.Json(new { count = tokens.Count, max_model_len = llm.MaxModelLength, tokens });
        });
        // (HttpContext, CancellationToken) handlers: route handlers whose IResult is written (a lone HttpContext parameter
        // would make them plain request delegates), and that the OpenAPI document lists.
        app.MapPost("/pooling", (HttpContext c, CancellationToken _) => Pooling(c, options, llm));
        app.MapPost("/v1/embeddings", (HttpContext c, CancellationToken _) => Embeddings(c, options, llm));
        app.MapPost("/score", (HttpContext c, CancellationToken _) => Score(c, options, llm));
        app.MapPost("/v1/score", (HttpContext c, CancellationToken _) => Score(c, options, llm));
        foreach (var route in new[] { "/rerank", "/v1/rerank", "/v2/rerank" })
            app.MapPost(route, (HttpContext c, CancellationToken _) => Rerank(c, options, llm));
        app.MapFallback((HttpContext c) => Write(c, new ApiError(HttpStatusCode.NotFound, $"No route {c.Request.Method} {c.Request.Path}.")));
        return app;
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private static string Id(string prefix) => $"{prefix}-{Guid.NewGuid():N}";

    private static Task Write(HttpContext context, ApiError error)
    {
        context.Response.StatusCode = (int)error.Status;
        return context.Response.WriteAsJsonAsync(error.Body);
    }

    /// <summary>The JSON body (an object), with the <c>model</c> field checked against the served name.</summary>
    private static async Task<JsonElement> Body(HttpContext c, ServerOptions options, Llm llm)
    {
        JsonDocument doc;
        try
        {
            doc = await JsonDocument.ParseAsync(c.Request.Body, cancellationToken: c.RequestAborted);
        }
        catch (JsonException e)
        {
            throw ApiError.Bad($"The body is not valid JSON: {e.Message}");
        }
        var body = doc.RootElement.Clone();
        doc.Dispose();
        if (body.ValueKind != JsonValueKind.Object) throw ApiError.Bad("The body must be a JSON object.");
        if (RequestParsing.String(body, "model") is { } model && model != options.Name)
            throw new ApiError(HttpStatusCode.NotFound, $"The model `{model}` does not exist.", "model");
        return body;
    }

    private static object Usage(IEnumerable<PoolingRequestOutput> outputs)
    {
        var tokens = outputs.Sum(o => o.PromptTokenIds.Count);
        PromptTokens.Inc(tokens);
        return new { prompt_tokens = tokens, total_tokens = tokens, completion_tokens = 0 };
    }

    /// <summary>A vector (or token vectors) as JSON numbers, or as base64 of the float32 little-endian values (vLLM).</summary>
    private static object Vector(PoolingOutput o, bool base64)
    {
        if (base64) return Convert.ToBase64String(MemoryMarshal.AsBytes(o.Data.AsSpan()));
        if (o.Shape.Length == 1) return o.Data;
        return Enumerable.Range(0, o.Shape[0]).Select(i => o.Row(i).ToArray()).ToArray();
    }

    private static async Task<IResult> Pooling(HttpContext c, ServerOptions options, Llm llm)
    {
        var body = await Body(c, options, llm);
        var task = RequestParsing.String(body, "task") switch
        {
            null => llm.IsLateInteraction ? PoolingTask.TokenEmbed : PoolingTask.Embed,
            "token_embed" => PoolingTask.TokenEmbed,
            "embed" => PoolingTask.Embed,
            var other => throw ApiError.Bad($"task '{other}' is not supported (token_embed, embed).", "task"),
        };
        var prompts = RequestParsing.Inputs(body, "input", options.MaxInputsPerRequest);
        var outputs = await llm.EncodeAsync(prompts, task, RequestParsing.Params(body), c.RequestAborted);
        var base64 = RequestParsing.Base64(body);
        return Results.Json(new
        {
            id = Id("pool"), @object = "list", created = Now(), model = options.Name,
            data = outputs.Select((o, i) => new { index = i, @object = "pooling", data = Vector(o.Outputs, base64) }),
            usage = Usage(outputs),
        });
    }

    private static async Task<IResult> Embeddings(HttpContext c, ServerOptions options, Llm llm)
    {
        var body = await Body(c, options, llm);
        var prompts = RequestParsing.Inputs(body, "input", options.MaxInputsPerRequest);
        var outputs = await llm.EncodeAsync(prompts, PoolingTask.Embed, RequestParsing.Params(body), c.RequestAborted);
        var base64 = RequestParsing.Base64(body);
        return Results.Json(new
        {
            @object = "list", model = options.Name,
            data = outputs.Select((o, i) => new { @object = "embedding", index = i, embedding = Vector(o.Outputs, base64) }),
            usage = Usage(outputs),
        });
    }

    /// <summary>Scores queries against documents (1:N or zipped N:N), with the tokens the prompts took.</summary>
    private static async Task<(IReadOnlyList<ScoringRequestOutput> Scores, int Tokens)> Scores(Llm llm, Prompt[] queries, Prompt[] documents, PoolingParams p, CancellationToken ct)
    {
        if (queries.Length != 1 && queries.Length != documents.Length)
            throw ApiError.Bad($"Score needs one query or as many queries as documents; got {queries.Length} and {documents.Length}.");
        var scores = await llm.ScoreAsync(queries, documents, p, ct);
        var tokens = queries.Concat(documents).Sum(x => x.TokenIds?.Count ?? llm.Tokenize(x.Text!).Count);
        PromptTokens.Inc(tokens);
        return (scores, tokens);
    }

    private static async Task<IResult> Score(HttpContext c, ServerOptions options, Llm llm)
    {
        var body = await Body(c, options, llm);
        var queries = RequestParsing.Texts(body, options.MaxInputsPerRequest, "queries", "text_1", "data_1");
        var documents = RequestParsing.Texts(body, options.MaxInputsPerRequest, "documents", "text_2", "data_2");
        var (scores, tokens) = await Scores(llm, queries, documents, RequestParsing.Params(body), c.RequestAborted);
        return Results.Json(new
        {
            id = Id("score"), @object = "list", created = Now(), model = options.Name,
            data = scores.Select((s, i) => new { index = i, @object = "score", score = s.Outputs.Score }),
            usage = new { prompt_tokens = tokens, total_tokens = tokens, completion_tokens = 0 },
        });
    }

    private static async Task<IResult> Rerank(HttpContext c, ServerOptions options, Llm llm)
    {
        var body = await Body(c, options, llm);
        var query = RequestParsing.String(body, "query") ?? throw ApiError.Bad("'query' is required (a string).", "query");
        if (!body.TryGetProperty("documents", out var docs) || docs.ValueKind != JsonValueKind.Array || docs.GetArrayLength() == 0)
            throw ApiError.Bad("'documents' must be a non-empty list of strings.", "documents");
        var texts = docs.EnumerateArray().Select((d, i) => d.ValueKind == JsonValueKind.String ? d.GetString()! : throw ApiError.Bad($"'documents[{i}]' must be a string.", "documents")).ToArray();
        if (texts.Length > options.MaxInputsPerRequest)
            throw new ApiError(HttpStatusCode.RequestEntityTooLarge, $"'documents' has {texts.Length} entries; the limit is {options.MaxInputsPerRequest}.", "documents");
        var topN = RequestParsing.Int(body, "top_n") ?? texts.Length;
        if (topN <= 0) throw ApiError.Bad("'top_n' must be positive.", "top_n");
        var (scores, tokens) = await Scores(llm, [Prompt.FromText(query)], texts.Select(Prompt.FromText).ToArray(), RequestParsing.Params(body), c.RequestAborted);
        return Results.Json(new
        {
            id = Id("rerank"), model = options.Name,
            usage = new { total_tokens = tokens },
            results = scores.Select((s, i) => new { index = i, document = new { text = texts[i] }, relevance_score = s.Outputs.Score })
                .OrderByDescending(r => r.relevance_score).Take(topN),
        });
    }
}
