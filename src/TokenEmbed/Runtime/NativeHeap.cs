using System.Runtime.InteropServices;

namespace TokenEmbed.Runtime;

/// <summary>
/// glibc heap tuning for tensor workloads. libtorch allocates every activation with <c>posix_memalign</c>; glibc serves
/// blocks above its mmap threshold (dynamic, 128 KiB at start) with fresh <c>mmap</c>s and trims freed heap tops at once, so
/// every forward page-faults its activations in again (6k–80k minor faults per 32 × 128 MiniLM forward, against ~20 for ONNX
/// Runtime's arena), and freshly mapped outputs made oneDNN's batched products 10–20× slower in measurements. Raising the
/// mmap threshold to glibc's maximum (32 MiB) and the trim threshold to 512 MiB keeps freed activation memory in the heap for
/// the next forward: resident memory settles at the high-water mark of one forward instead of growing. Set the
/// environment variable <c>TOKENEMBED_MALLOPT=0</c> to leave glibc's defaults (other allocators, e.g. jemalloc, ignore this).
/// </summary>
internal static partial class NativeHeap
{
    private const int MTrimThreshold = -1;
    private const int MMmapThreshold = -3;

    /// <summary>Whether the thresholds were set.</summary>
    public static bool Tuned { get; private set; }

    /// <summary>Sets the thresholds once (Linux with glibc only; anything else is left alone).</summary>
    public static void KeepTensorMemory()
    {
        if (Tuned || Environment.GetEnvironmentVariable("TOKENEMBED_MALLOPT") == "0") return;
        try
        {
            Tuned = MallOpt(MMmapThreshold, 32 << 20) == 1 & MallOpt(MTrimThreshold, 512 << 20) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // musl or another libc: nothing to tune.
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int param, int value);
}
