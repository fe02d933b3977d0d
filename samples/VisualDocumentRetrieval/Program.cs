// Visual document retrieval with a Qwen3-VL multi-vector model (ColQwen3 / Ops-ColQwen3 / Nemotron colembed, or a plain
// Qwen3-VL converted for pooling): encode page images and a text query into token vectors and rank the pages by MaxSim,
// as vLLM's token_embed examples do for text. Each model's own query/document prompt convention is applied here, by the
// app: Llm.Encode itself keeps vLLM's plain behaviour.
//
// usage: dotnet run --project samples/VisualDocumentRetrieval -c Release -- <model folder> "<query>" <image> [<image> ...]
using TokenEmbed;

if (args.Length < 3)
{
    Console.Error.WriteLine("usage: VisualDocumentRetrieval <model folder> \"<query>\" <image> [<image> ...]");
    return 2;
}

using var llm = new Llm(args[0], new LlmOptions { Device = "auto" });
var query = args[1];
var images = args[2..].Select(ImageInput.FromFile).ToArray();
Console.WriteLine($"model: {llm.Architecture} on {llm.Device}, {llm.Dimension}-d token vectors");

const string Image = "<|vision_start|><|image_pad|><|vision_end|>";
var (queryPrompt, documentPrompts) = llm.Architecture switch
{
    // Tomoro ColQwen3 (colpali-engine conventions): the query followed by 10 augmentation tokens (the pad token);
    // documents in a user turn with "Describe the image.".
    "ColQwen3" => (Prompt.FromText(query + string.Concat(Enumerable.Repeat("<|endoftext|>", 10))),
        images.Select(i => Prompt.FromText($"<|im_start|>user\n{Image}Describe the image.<|im_end|><|endoftext|>", [i])).ToArray()),
    // OpenSearch Ops-ColQwen3: plain query; documents as a user turn followed by the assistant header.
    "OpsColQwen3Model" => (Prompt.FromText(query),
        images.Select(i => Prompt.FromText($"<|im_start|>user\n{Image}Describe the image.<|im_end|><|im_start|>assistant\n<|endoftext|>", [i])).ToArray()),
    // NVIDIA Nemotron colembed: "Query: query: …" and "passage: …" inside the Qwen chat template (generation prompt added).
    "Qwen3VLNemotronEmbedModel" => (Prompt.FromText($"<|im_start|>user\nQuery: query: {query}<|im_end|>\n<|im_start|>assistant\n"),
        images.Select(i => Prompt.FromText($"<|im_start|>user\n{Image}passage: <|im_end|>\n<|im_start|>assistant\n", [i])).ToArray()),
    // vLLM's score path for other models: the image placeholder in front of the (empty) text, no template.
    _ => (Prompt.FromText(query), images.Select(i => Prompt.FromImage(i)).ToArray()),
};

var scores = llm.Score(queryPrompt, documentPrompts);
foreach (var (path, score) in args[2..].Zip(scores.Select(s => s.Outputs.Score)).OrderByDescending(x => x.Second))
    Console.WriteLine($"{score,9:F4}  {path}");
return 0;
