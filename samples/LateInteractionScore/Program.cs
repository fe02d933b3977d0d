// Mirrors vLLM's examples/pooling/score (late-interaction scoring with LLM.score): one query against one document (1:1),
// one query against several documents (1:N), and several queries against as many documents, pairwise (N:N).
//
// usage: dotnet run --project samples/LateInteractionScore -c Release -- <model folder> [cpu|cuda|auto]
using TokenEmbed;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: LateInteractionScore <model folder> [device: auto|cpu|cuda]");
    return 2;
}

using var llm = new Llm(args[0], new LlmOptions { Device = args.Length > 1 ? args[1] : "auto" });
Console.WriteLine($"model: {llm.Architecture} on {llm.Device} ({llm.Backend}); " +
                  (llm.IsLateInteraction ? "late interaction (MaxSim)" : "cosine similarity of one vector per text"));

var query = "What is the capital of France?";
string[] documents =
[
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower is in Paris.",
    "Berlin is the capital of Germany.",
];

// 1:1
var one = llm.Score(query, documents[0]);
Console.WriteLine($"1:1  {one[0].Outputs.Score,8:F4}  {documents[0]}");

// 1:N
Console.WriteLine("1:N");
var many = llm.Score(query, documents);
foreach (var (s, d) in many.Select(r => r.Outputs.Score).Zip(documents)) Console.WriteLine($"     {s,8:F4}  {d}");

// N:N (pairwise: query i with document i)
string[] queries = ["What is the capital of France?", "Where is the Eiffel Tower?", "What is the capital of Germany?"];
Console.WriteLine("N:N");
var pairs = llm.Score(queries, documents);
for (var i = 0; i < pairs.Count; i++) Console.WriteLine($"     {pairs[i].Outputs.Score,8:F4}  {queries[i]} | {documents[i]}");
return 0;
