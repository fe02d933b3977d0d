using System.Diagnostics;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;
using TokenEmbed.Server;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// Load on the HTTP server over loopback (bounded: a fixed duration per setting): 1, 4, 16 and 64 clients each sending
/// single-query /pooling token_embed requests back to back against all-MiniLM-L6-v2, with the scheduler's dynamic
/// batching and with one request per forward (--max-num-seqs 1). Prints requests/s, p50/p99 latency and the mean batch size.
/// Run: <c>dotnet run -c Release --project benchmarks/TokenEmbed.Benchmarks -- load [seconds per setting]</c>.
/// </summary>
internal static class ServerLoad
{
    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = args.Length > 1 && int.TryParse(args[1], out var s) ? s : 20;
        Console.WriteLine($"server load, all-MiniLM-L6-v2, single-query /pooling token_embed, {seconds} s per setting, loopback");
        Console.WriteLine("| batching | clients | requests/s | p50 ms | p99 ms | mean batch |");
        Console.WriteLine("|---|---|---|---|---|---|");
        var results = new Dictionary<(bool, int), double>();
        foreach (var batching in new[] { true, false })
        {
            var port = FreePort();
            var options = new ServerOptions { Model = ModelPaths.MiniLm, Port = port, Device = "cpu", MaxNumSeqs = batching ? null : 1 };
            using var llm = new Llm(options.Model, options.ToLlmOptions());
            await using var app = ServerApp.Create(options, llm, b => b.Logging.ClearProviders());
            await app.StartAsync();
            using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 256 }) { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            await Send(http, 0);   // warm-up
            foreach (var clients in new[] { 1, 4, 16, 64 })
            {
                var before = llm.Scheduler.Counts;
                var latencies = new List<double>[clients];
                var stop = DateTime.UtcNow.AddSeconds(seconds);
                var sw = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, clients).Select(c => Task.Run(async () =>
                {
                    latencies[c] = [];
                    for (var i = 0; DateTime.UtcNow < stop; i++)
                    {
                        var t = Stopwatch.GetTimestamp();
                        await Send(http, c * 100003 + i);
                        latencies[c].Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
                    }
                })));
                var elapsed = sw.Elapsed.TotalSeconds;
                var all = latencies.SelectMany(l => l).Order().ToArray();
                var after = llm.Scheduler.Counts;
                var rps = all.Length / elapsed;
                results[(batching, clients)] = rps;
                Console.WriteLine($"| {(batching ? "dynamic" : "off (1 per forward)")} | {clients} | {rps:F0} | {all[all.Length / 2]:F1} | {all[(int)(all.Length * 0.99)]:F1} | " +
                                  $"{(double)(after.Requests - before.Requests) / Math.Max(1, after.Batches - before.Batches):F1} |");
            }
            await app.StopAsync();
        }
        foreach (var clients in new[] { 1, 4, 16, 64 })
            Console.WriteLine($"{clients} clients: dynamic / off = {results[(true, clients)] / results[(false, clients)]:F2}x requests/s");
        return 0;
    }

    private static readonly string[] Words = ["late", "interaction", "retrieval", "token", "vector", "ColBERT", "query", "document", "score", "MaxSim", "index", "search"];

    private static async Task Send(HttpClient http, int seed)
    {
        var rng = new Random(seed);
        var query = string.Join(' ', Enumerable.Range(0, 4 + rng.Next(8)).Select(_ => Words[rng.Next(Words.Length)]));
        using var response = await http.PostAsync("/pooling", new StringContent($$"""{"input": "{{query}}", "task": "token_embed"}""", Encoding.UTF8, "application/json"));
        if (response.StatusCode != HttpStatusCode.OK) throw new InvalidOperationException($"{response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        await response.Content.ReadAsByteArrayAsync();
    }

    private static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
