using System.Runtime.InteropServices;
using System.Security.Cryptography;
using TorchSharp;

namespace TokenEmbed.Runtime;

/// <summary>
/// Makes TorchSharp's native libraries load, once per process, before the first TorchSharp call:
/// libtorch from the app's own native folder (TorchSharp-cpu / a CUDA package) or from an existing PyTorch
/// installation (<see cref="LlmOptions.TorchLibraryPath"/> or <c>TOKENEMBED_TORCH_LIB</c>), then
/// <c>libLibTorchSharp.so</c>, patched in a per-user cache copy when the system libstdc++ is too old for it.
/// </summary>
internal static class TorchRuntime
{
    /// <summary>Environment variable naming a PyTorch <c>torch/lib</c> folder to take libtorch from.</summary>
    public const string TorchLibEnvironmentVariable = "TOKENEMBED_TORCH_LIB";

    /// <summary>Environment variable naming the folder that holds patched native libraries.</summary>
    public const string CacheEnvironmentVariable = "TOKENEMBED_CACHE";

    private const string TorchSharpNative = "libLibTorchSharp.so";
    private const string MissingGlibcxx = "GLIBCXX_3.4.32";

    private static readonly object Gate = new();
    private static bool _initialized;
    private static string? _torchLibUsed;
    private static readonly List<IntPtr> Handles = new();

    /// <summary>Where libtorch was taken from (null: the app's own native assets or the platform default).</summary>
    public static string? TorchLibrarySource => _torchLibUsed;

    /// <summary>Whether a patched copy of libLibTorchSharp was needed on this machine.</summary>
    public static bool UsedPatchedTorchSharp { get; private set; }

    /// <summary>Loads the native runtime once. Later calls with a different torch/lib folder fail.</summary>
    public static void EnsureInitialized(string? torchLibPath)
    {
        torchLibPath ??= NullIfEmpty(Environment.GetEnvironmentVariable(TorchLibEnvironmentVariable));
        lock (Gate)
        {
            if (_initialized)
            {
                if (torchLibPath != null && !string.Equals(Path.GetFullPath(torchLibPath), _torchLibUsed, StringComparison.Ordinal))
                    throw new InvalidOperationException(
                        $"The native runtime is already initialized from '{_torchLibUsed ?? "the application's TorchSharp native assets"}'; " +
                        $"it cannot switch to '{torchLibPath}' in the same process.");
                return;
            }
            if (OperatingSystem.IsLinux())
            {
                LoadLinux(torchLibPath);
                NativeHeap.KeepTensorMemory();
            }
            else if (torchLibPath != null) LoadFromTorchLib(torchLibPath, ".dll", "");
            _initialized = true;
        }
    }

    /// <summary>
    /// The address of native symbol <paramref name="name"/> in the loaded libtorch or LibTorchSharp (the libraries loaded here,
    /// else <c>torch_cpu</c> / <c>LibTorchSharp</c> as the platform resolves them next to TorchSharp), or
    /// <see cref="IntPtr.Zero"/> when no library exports it.
    /// </summary>
    public static IntPtr FindExport(string name)
    {
        lock (Gate)
        {
            foreach (var h in Handles)
                if (NativeLibrary.TryGetExport(h, name, out var address)) return address;
        }
        foreach (var lib in new[] { "libtorch_cpu.so", "torch_cpu", "libtorch_cpu.dylib", "LibTorchSharp" })
            if (NativeLibrary.TryLoad(lib, typeof(torch).Assembly, null, out var h) && NativeLibrary.TryGetExport(h, name, out var address))
                return address;
        return IntPtr.Zero;
    }

    private static void LoadLinux(string? torchLibPath)
    {
        var torchSharpNative = FindTorchSharpNative()
            ?? throw new DllNotFoundException(
                $"{TorchSharpNative} was not found next to the application. Reference the TorchSharp package (it ships the bindings) " +
                "and a libtorch backend: TorchSharp-cpu, TorchSharp-cuda-linux, or set " + TorchLibEnvironmentVariable + " to a PyTorch torch/lib folder.");

        if (torchLibPath != null)
        {
            LoadFromTorchLib(torchLibPath, ".so", "lib");
            _torchLibUsed = Path.GetFullPath(torchLibPath);
        }
        else
        {
            var dir = Path.GetDirectoryName(torchSharpNative)!;
            var libtorchDir = new[] { dir }.Concat(NativeSearchDirectories())
                .FirstOrDefault(d => File.Exists(Path.Combine(d, "libtorch.so")));
            if (libtorchDir == null)
                throw new DllNotFoundException(
                    "libtorch was not found next to the application. Reference TorchSharp-cpu (CPU) or TorchSharp-cuda-linux (CUDA), " +
                    "or set " + TorchLibEnvironmentVariable + " to the torch/lib folder of a PyTorch installation.");
            foreach (var name in new[] { "libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so" })
            {
                var p = Path.Combine(libtorchDir, name);
                if (File.Exists(p)) Handles.Add(NativeLibrary.Load(p));
            }
        }

        if (NativeLibrary.TryLoad(torchSharpNative, out var handle))
        {
            Handles.Add(handle);
            return;
        }

        // The usual cause on Debian 12 / Ubuntu 22.04: a libstdc++ without GLIBCXX_3.4.32.
        var image = File.ReadAllBytes(torchSharpNative);
        if (!ElfVersionPatcher.RequiresVersion(image, MissingGlibcxx, out var weak) || weak)
        {
            NativeLibrary.Load(torchSharpNative); // throws with the loader's own message
            return;
        }
        var patched = PatchedCopy(image);
        try
        {
            Handles.Add(NativeLibrary.Load(patched));
            UsedPatchedTorchSharp = true;
        }
        catch (DllNotFoundException e)
        {
            throw new DllNotFoundException($"{TorchSharpNative} could not be loaded (also tried a copy patched for {MissingGlibcxx} at '{patched}'): {e.Message}", e);
        }
    }

    private static void LoadFromTorchLib(string torchLibPath, string ext, string prefix)
    {
        if (!Directory.Exists(torchLibPath))
            throw new DirectoryNotFoundException($"The PyTorch library folder '{torchLibPath}' does not exist ({TorchLibEnvironmentVariable} / LlmOptions.TorchLibraryPath).");
        var optional = new[] { "c10_cuda", "torch_cuda" };
        foreach (var name in new[] { "c10", "torch_cpu", "c10_cuda", "torch_cuda", "torch" })
        {
            var p = Path.Combine(torchLibPath, prefix + name + ext);
            if (File.Exists(p)) Handles.Add(NativeLibrary.Load(p));
            else if (!optional.Contains(name))
                throw new DllNotFoundException($"'{p}' is missing: '{torchLibPath}' does not look like a PyTorch torch/lib folder.");
        }
    }

    private static string PatchedCopy(byte[] image)
    {
        var hash = Convert.ToHexString(SHA256.HashData(image))[..16].ToLowerInvariant();
        var root = NullIfEmpty(Environment.GetEnvironmentVariable(CacheEnvironmentVariable))
                   ?? Path.Combine(NullIfEmpty(Environment.GetEnvironmentVariable("XDG_CACHE_HOME"))
                                   ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "tokenembed");
        string dir;
        try
        {
            dir = Path.Combine(root, "native", hash);
            Directory.CreateDirectory(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            dir = Path.Combine(Path.GetTempPath(), "tokenembed-" + Environment.UserName, "native", hash);
            Directory.CreateDirectory(dir);
        }
        var target = Path.Combine(dir, TorchSharpNative);
        if (File.Exists(target) && new FileInfo(target).Length == image.Length) return target;

        ElfVersionPatcher.MarkWeak(image, MissingGlibcxx);
        var tmp = target + "." + Environment.ProcessId + ".tmp";
        File.WriteAllBytes(tmp, image);
        File.Move(tmp, target, overwrite: true);
        return target;
    }

    private static string? FindTorchSharpNative()
    {
        foreach (var dir in CandidateDirectories())
        {
            var p = Path.Combine(dir, TorchSharpNative);
            if (File.Exists(p)) return p;
        }
        return null;
    }

    private static IEnumerable<string> CandidateDirectories()
    {
        var baseDir = AppContext.BaseDirectory;
        yield return baseDir;
        yield return Path.Combine(baseDir, "runtimes", "linux-x64", "native");
        foreach (var d in NativeSearchDirectories()) yield return d;
        var torchSharpDir = Path.GetDirectoryName(typeof(torch).Assembly.Location);
        if (!string.IsNullOrEmpty(torchSharpDir))
        {
            yield return torchSharpDir;
            // Running from the NuGet cache layout: lib/net8.0/TorchSharp.dll → runtimes/linux-x64/native.
            yield return Path.GetFullPath(Path.Combine(torchSharpDir, "..", "..", "runtimes", "linux-x64", "native"));
        }
    }

    private static IEnumerable<string> NativeSearchDirectories()
    {
        var dirs = AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") as string;
        if (string.IsNullOrEmpty(dirs)) yield break;
        foreach (var d in dirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
            if (Directory.Exists(d)) yield return d;
    }

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;
}
