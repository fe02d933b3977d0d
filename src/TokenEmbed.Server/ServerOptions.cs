namespace TokenEmbed.Server;

/// <summary>What <c>tokenembed serve</c> was started with (vLLM's <c>vllm serve</c> flags).</summary>
public sealed class ServerOptions
{
    /// <summary>The model folder.</summary>
    public required string Model { get; init; }

    /// <summary>The address to listen on. Default <c>127.0.0.1</c>.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>The port. Default 8000.</summary>
    public int Port { get; init; } = 8000;

    /// <summary><c>auto</c>, <c>cpu</c> or <c>cuda</c>.</summary>
    public string Device { get; init; } = "auto";

    /// <summary><c>auto</c>, <c>float32</c>, <c>float16</c> or <c>bfloat16</c>.</summary>
    public string DType { get; init; } = "auto";

    /// <summary>The library options these flags ask for.</summary>
    public LlmOptions ToLlmOptions()
    {
        var defaults = new LlmOptions();
        return new LlmOptions
        {
            Device = Device,
            DType = DType,
            MaxBatchTokens = MaxBatchTokens ?? defaults.MaxBatchTokens,
            MaxBatchSize = MaxNumSeqs ?? defaults.MaxBatchSize,
        };
    }

    /// <summary>The token budget of one forward batch, or null for the library's default.</summary>
    public int? MaxBatchTokens { get; init; }

    /// <summary>The most prompts one forward batch may hold (vLLM's <c>--max-num-seqs</c>); 1 turns batching off. Null: the library's default.</summary>
    public int? MaxNumSeqs { get; init; }

    /// <summary>The name requests must use in <c>model</c>; default the model folder as given.</summary>
    public string? ServedModelName { get; init; }

    /// <summary>When set, every endpoint but <c>/health</c> needs <c>Authorization: Bearer &lt;key&gt;</c>.</summary>
    public string? ApiKey { get; init; }

    /// <summary>The most inputs one request may carry (413 beyond it). Default 2048.</summary>
    public int MaxInputsPerRequest { get; init; } = 2048;

    /// <summary>The name served in responses and checked in requests.</summary>
    public string Name => ServedModelName ?? Model;

    /// <summary>
    /// Parses <c>serve &lt;model&gt; [--host H] [--port P] [--device D] [--dtype T] [--max-batch-tokens N]
    /// [--max-num-seqs N] [--served-model-name NAME] [--api-key KEY]</c>.
    /// </summary>
    /// <exception cref="ArgumentException">The arguments are malformed (the message says which).</exception>
    public static ServerOptions Parse(IReadOnlyList<string> args)
    {
        if (args.Count < 2 || args[0] != "serve")
            throw new ArgumentException("usage: tokenembed serve <model> [--host 127.0.0.1] [--port 8000] [--device auto|cpu|cuda] [--dtype auto|float32|float16|bfloat16] [--max-batch-tokens N] [--max-num-seqs N] [--served-model-name NAME] [--api-key KEY]");
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (var i = 2; i < args.Count; i += 2)
        {
            var flag = args[i];
            if (!flag.StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Count)
                throw new ArgumentException($"'{flag}' needs a value (flags are --name value).");
            values[flag[2..]] = args[i + 1];
        }
        string? Take(string name) => values.Remove(name, out var v) ? v : null;
        int? Int(string name) => Take(name) is { } v ? int.TryParse(v, out var n) && n > 0 ? n : throw new ArgumentException($"--{name} must be a positive integer, got '{v}'.") : null;
        var options = new ServerOptions
        {
            Model = args[1],
            Host = Take("host") ?? "127.0.0.1",
            Port = Int("port") ?? 8000,
            Device = Take("device") ?? "auto",
            DType = Take("dtype") ?? "auto",
            MaxBatchTokens = Int("max-batch-tokens"),
            MaxNumSeqs = Int("max-num-seqs"),
            ServedModelName = Take("served-model-name"),
            ApiKey = Take("api-key"),
        };
        if (values.Count > 0) throw new ArgumentException($"Unknown option(s): {string.Join(", ", values.Keys.Select(k => "--" + k))}.");
        return options;
    }
}
