namespace TokenEmbed.Benchmarks;

/// <summary>Finds the all-MiniLM-L6-v2 folder: TOKENEMBED_MODELS, else ../shared/models beside the repository.</summary>
internal static class ModelPaths
{
    public static string MiniLm
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("TOKENEMBED_MODELS");
            if (!string.IsNullOrEmpty(env)) return Path.Combine(env, "all-MiniLM-L6-v2");
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "TokenEmbed.sln")))
                    return Path.GetFullPath(Path.Combine(dir.FullName, "..", "shared", "models", "all-MiniLM-L6-v2"));
            throw new DirectoryNotFoundException("all-MiniLM-L6-v2 not found: set TOKENEMBED_MODELS.");
        }
    }
}
