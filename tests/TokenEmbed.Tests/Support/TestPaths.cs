using NUnit.Framework;

namespace TokenEmbed.Tests.Support;

/// <summary>Where the tests find their fixtures.</summary>
internal static class TestPaths
{
    /// <summary>Fixtures vendored in this repository (copied next to the test assembly).</summary>
    public static string Fixtures => Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures");

    /// <summary>
    /// A vendored fixture path, e.g. Fixture("tokenizers", "bert-base-uncased"). Files too large to keep in git as they
    /// are (Qwen3's 11 MB tokenizer.json) are vendored gzipped; a fixture folder gets them inflated beside the .gz on first use.
    /// </summary>
    public static string Fixture(params string[] parts)
    {
        var path = Path.Combine([Fixtures, .. parts]);
        if (Directory.Exists(path)) InflateGzipped(path);
        return path;
    }

    private static readonly object InflateGate = new();

    private static void InflateGzipped(string folder)
    {
        lock (InflateGate)
        {
            foreach (var gz in Directory.EnumerateFiles(folder, "*.gz"))
            {
                var target = gz[..^3];
                if (File.Exists(target)) continue;
                var tmp = target + ".tmp";
                using (var input = new System.IO.Compression.GZipStream(File.OpenRead(gz), System.IO.Compression.CompressionMode.Decompress))
                using (var output = File.Create(tmp))
                    input.CopyTo(output);
                File.Move(tmp, target);
            }
        }
    }

    /// <summary>
    /// The folder of large shared models (../shared/models beside the repository, or TOKENEMBED_MODELS),
    /// or null when absent.
    /// </summary>
    public static string? SharedModels
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("TOKENEMBED_MODELS");
            if (!string.IsNullOrEmpty(env)) return Directory.Exists(env) ? env : null;
            for (var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); dir != null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "TokenEmbed.sln")))
                {
                    var shared = Path.Combine(dir.FullName, "..", "shared", "models");
                    return Directory.Exists(shared) ? Path.GetFullPath(shared) : null;
                }
            }
            return null;
        }
    }

    /// <summary>The all-MiniLM-L6-v2 folder, or an Ignore (reported as skipped, with the reason) when absent.</summary>
    public static string MiniLm
    {
        get
        {
            var root = SharedModels;
            var path = root == null ? null : Path.Combine(root, "all-MiniLM-L6-v2");
            if (path == null || !File.Exists(Path.Combine(path, "model.safetensors")))
                Assert.Ignore("all-MiniLM-L6-v2 not found: set TOKENEMBED_MODELS or place ../shared/models beside the repository");
            return path!;
        }
    }
}
