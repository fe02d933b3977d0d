namespace TokenEmbed.Benchmarks;

/// <summary>Finds the all-MiniLM-L6-v2 folder: TOKENEMBED_MODELS, else ../shared/models beside the repository.</summary>
internal static class ModelPaths
{
    /// <summary>The repository root (the folder holding TokenEmbed.sln).</summary>
    public static string RepositoryRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "TokenEmbed.sln"))) return dir.FullName;
            throw new DirectoryNotFoundException("TokenEmbed.sln not found above the benchmark.");
        }
    }

    /// <summary>The tiny Qwen3-VL golden model vendored with the tests (random weights, the real architecture).</summary>
    public static string Qwen3VlGolden => Path.Combine(RepositoryRoot, "tests", "TokenEmbed.Tests", "Fixtures", "goldens", "qwen3_vl");

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
