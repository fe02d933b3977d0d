// Mirrors vLLM's examples/pooling/token_embed/multi_vector_retrieval_offline.py:
// encode a query and documents into token embeddings, print their shapes, rank the documents by
// late-interaction (MaxSim) score.
//
// usage: dotnet run --project samples/MultiVectorRetrieval -c Release -- <model folder> [cpu|cuda|auto]
using TokenEmbed;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: MultiVectorRetrieval <model folder> [device: auto|cpu|cuda]");
    return 2;
}

using var llm = new Llm(args[0], new LlmOptions { Device = args.Length > 1 ? args[1] : "auto" });
Console.WriteLine($"model: {llm.Architecture} from {args[0]} on {llm.Device}, {llm.Dimension}-d vectors, max {llm.MaxModelLength} tokens");

var query = "What is late interaction in neural retrieval?";
string[] documents =
[
    "Late interaction models such as ColBERT keep one embedding per token and score a query against a document by summing, over query tokens, the best match among document tokens.",
    "The Eiffel Tower was completed in 1889 and is the most visited paid monument in the world.",
    "Dense retrieval compresses a whole passage into a single vector and compares vectors with cosine similarity.",
    "Bread is made from flour, water, salt and yeast.",
];

// One vector per prompt.
var embeds = llm.Encode([query, .. documents], PoolingTask.Embed);
Console.WriteLine($"embed: {embeds.Count} vectors of shape [{string.Join(", ", embeds[0].Outputs.Shape)}]");

// One vector per token (special tokens included).
var tokenEmbeds = llm.Encode([query, .. documents], PoolingTask.TokenEmbed);
for (var i = 0; i < tokenEmbeds.Count; i++)
    Console.WriteLine($"token_embed {(i == 0 ? "query" : $"doc {i - 1}")}: shape [{string.Join(", ", tokenEmbeds[i].Outputs.Shape)}]");

// Rank documents by MaxSim over the token vectors.
var queryVectors = tokenEmbeds[0].Outputs;
var ranked = documents
    .Select((doc, i) => (doc, score: LateInteraction.MaxSim(queryVectors, tokenEmbeds[i + 1].Outputs)))
    .OrderByDescending(x => x.score)
    .ToList();
Console.WriteLine($"\nquery: {query}");
foreach (var (doc, score) in ranked)
    Console.WriteLine($"  {score,8:F4}  {doc}");

// Llm.Score does the same in one call (MaxSim for ColBERT-style models, cosine for single-vector models).
var scores = llm.Score(query, documents);
Console.WriteLine($"\nLlm.Score ({(llm.IsLateInteraction ? "MaxSim" : "cosine")}): {string.Join(", ", scores.Select(s => s.Outputs.Score.ToString("F4")))}");
return 0;
