// Mirrors vLLM's examples/pooling/token_embed/multi_vector_retrieval_online.py against the TokenEmbed server:
// POST /pooling with task token_embed for a query and documents, then rank the documents by MaxSim.
//
// 1. start the server:  dotnet run --project src/TokenEmbed.Server -c Release -- serve <model folder> --port 8000
// 2. run the client:    dotnet run --project samples/MultiVectorRetrievalOnline -c Release -- http://127.0.0.1:8000
using System.Net.Http.Json;
using System.Text.Json;

var server = args.Length > 0 ? args[0] : "http://127.0.0.1:8000";
using var http = new HttpClient { BaseAddress = new Uri(server) };

var query = "What is late interaction in neural retrieval?";
string[] documents =
[
    "Late interaction models such as ColBERT keep one embedding per token and score a query against a document by summing, over query tokens, the best match among document tokens.",
    "The Eiffel Tower was completed in 1889 and is the most visited paid monument in the world.",
    "Dense retrieval compresses a whole passage into a single vector and compares vectors with cosine similarity.",
];

using var response = await http.PostAsJsonAsync("/pooling", new { input = new[] { query }.Concat(documents).ToArray(), task = "token_embed" });
var body = await response.Content.ReadFromJsonAsync<JsonElement>();
if (!response.IsSuccessStatusCode)
{
    Console.Error.WriteLine($"{(int)response.StatusCode}: {body}");
    return 1;
}

// data[i].data is [num_tokens][dim] for token_embed.
var vectors = body.GetProperty("data").EnumerateArray()
    .Select(d => d.GetProperty("data").EnumerateArray().Select(t => t.EnumerateArray().Select(v => v.GetSingle()).ToArray()).ToArray())
    .ToArray();
for (var i = 0; i < vectors.Length; i++)
    Console.WriteLine($"{(i == 0 ? "query" : $"doc {i - 1}")}: {vectors[i].Length} token vectors of {vectors[i][0].Length} dims");

static float MaxSim(float[][] q, float[][] d) =>
    q.Sum(qt => d.Max(dt => qt.Zip(dt).Sum(p => p.First * p.Second)));

Console.WriteLine($"\nquery: {query}");
foreach (var (doc, score) in documents.Select((doc, i) => (doc, MaxSim(vectors[0], vectors[i + 1]))).OrderByDescending(x => x.Item2))
    Console.WriteLine($"{score,9:F4}  {doc}");
Console.WriteLine($"usage: {body.GetProperty("usage")}");
return 0;
