using TokenEmbed;
using TokenEmbed.Server;

// tokenembed serve <model> --host 127.0.0.1 --port 8000 [--device auto|cpu|cuda] [--dtype ...] [--max-batch-tokens N]
//                          [--served-model-name NAME] [--api-key KEY]      (vllm serve's flags)
ServerOptions options;
try
{
    options = ServerOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine(e.Message);
    return 2;
}

Llm llm;
try
{
    llm = new Llm(options.Model, options.ToLlmOptions());
}
catch (Exception e) when (e is ModelLoadException or ArgumentException)
{
    Console.Error.WriteLine($"tokenembed: cannot load '{options.Model}': {e.Message}");
    return 1;
}
using var _ = llm;
var app = ServerApp.Create(options, llm);
try
{
    await app.StartAsync();
}
catch (IOException e) when (e.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
{
    // Kestrel's own message is an unhandled exception with a stack; say what to do instead, and exit as a failed start.
    Console.Error.WriteLine($"tokenembed: cannot listen on http://{options.Host}:{options.Port}: address already in use (another server has that port; pick a free one with --port)");
    return 1;
}
Console.WriteLine($"tokenembed: {llm.Architecture} from {options.Model} on {llm.Device} as '{options.Name}', listening on http://{options.Host}:{options.Port}");
await app.WaitForShutdownAsync();
return 0;
