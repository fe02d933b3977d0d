// Mirrors vLLM's token_embed example for a decoder converted for pooling (`--convert embed`): every token's last hidden
// state, unnormalized (PoolingParams.Normalize = false), with its shape and first values. Any folder works; a causal LM
// (Qwen3ForCausalLM, LlamaForCausalLM, …) is loaded as its backbone with lm_head dropped.
//
// usage: dotnet run --project samples/ExtractHiddenStates -c Release -- <model folder> [cpu|cuda|auto]
using TokenEmbed;

if (args.Length < 1)
{
    Console.Error.WriteLine("usage: ExtractHiddenStates <model folder> [device: auto|cpu|cuda]");
    return 2;
}

using var llm = new Llm(args[0], new LlmOptions { Device = args.Length > 1 ? args[1] : "auto" });
Console.WriteLine($"model: {llm.Architecture} on {llm.Device} ({llm.Backend}), hidden size {llm.Dimension}");

// Text prompts when the folder has a tokenizer; token ids otherwise (a checkpoint without tokenizer files).
Prompt[] prompts;
try
{
    prompts = [Prompt.FromText("Hello, my name is"), Prompt.FromText("The capital of France is")];
    llm.Tokenize("probe");
}
catch (InvalidOperationException)
{
    prompts = [Prompt.FromTokenIds([1, 15, 27, 42, 7]), Prompt.FromTokenIds([3, 9, 81])];
}

var outputs = llm.Encode(prompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
for (var i = 0; i < outputs.Count; i++)
{
    var o = outputs[i].Outputs;
    Console.WriteLine($"prompt {i}: {outputs[i].PromptTokenIds.Count} tokens -> hidden states [{string.Join(", ", o.Shape)}]; " +
                      $"first values {string.Join(", ", o.Data.Take(4).Select(v => v.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)))}");
}
return 0;
