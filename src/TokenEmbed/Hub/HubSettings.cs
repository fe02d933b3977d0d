namespace TokenEmbed.Hub;

/// <summary>
/// Where and how to reach the Hugging Face hub, read as <c>huggingface_hub</c> reads it: <c>HF_ENDPOINT</c>, the cache
/// (<c>HF_HUB_CACHE</c>, else <c>HF_HOME/hub</c>, else <c>~/.cache/huggingface/hub</c>), the token (<c>HF_TOKEN</c>,
/// <c>HUGGING_FACE_HUB_TOKEN</c>, else the file <c>HF_HOME/token</c>) and <c>HF_HUB_OFFLINE</c>.
/// </summary>
internal sealed record HubSettings(Uri Endpoint, string CacheDirectory, string? Token, bool Offline)
{
    /// <summary>The base of the retry backoff (doubled per attempt); tests shorten it.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Attempts per request on 429, 5xx, timeouts and broken transfers.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>The settings of this process's environment.</summary>
    public static HubSettings FromEnvironment()
    {
        static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;
        var home = Env("HF_HOME") ?? Path.Combine(Env("XDG_CACHE_HOME") ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "huggingface");
        var token = Env("HF_TOKEN") ?? Env("HUGGING_FACE_HUB_TOKEN");
        var tokenFile = Path.Combine(home, "token");
        if (token is null && File.Exists(tokenFile)) token = File.ReadAllText(tokenFile).Trim() is { Length: > 0 } t ? t : null;
        var offline = Env("HF_HUB_OFFLINE") is "1" or "true" or "TRUE" or "True" or "yes";
        return new HubSettings(new Uri((Env("HF_ENDPOINT") ?? "https://huggingface.co").TrimEnd('/') + "/"),
            Env("HF_HUB_CACHE") ?? Path.Combine(home, "hub"), token, offline);
    }
}
