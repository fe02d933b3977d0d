using System.Runtime.InteropServices;

namespace TokenEmbed.Runtime;

/// <summary>
/// glibc heap tuning for tensor workloads. libtorch allocates every activation with <c>posix_memalign</c>; glibc serves
/// blocks above its mmap threshold (dynamic, 128 KiB at start) with fresh <c>mmap</c>s and trims freed heap tops at once, so
/// every forward page-faults its activations in again (6k–80k minor faults per 32 × 128 MiniLM forward, against ~20 for ONNX
/// Runtime's arena), and freshly mapped outputs made oneDNN's batched products 10–20× slower in measurements. Three settings
/// keep freed activation memory for the next forward, so resident memory settles at the high-water mark of one forward
/// instead of being returned and faulted in again:
/// <list type="bullet">
/// <item>the mmap threshold at glibc's maximum (32 MiB): activations come from the heap, not from fresh mappings;</item>
/// <item>the trim threshold at 512 MiB: the main heap's free top is kept;</item>
/// <item>the top pad at 64 MiB. The engine runs forwards on its own thread, whose allocations come from a per-thread arena made
/// of 64 MiB heaps; glibc unmaps such a heap as soon as all of it is free, whatever the trim threshold, unless the arena's
/// previous heap lacks the top pad's room. A 32 × 128 MiniLM forward through <c>Llm.Encode</c> took 12k minor faults (about 90 ms
/// of 470) without it and 2k with it (the rest are the managed output arrays).</item>
/// </list>
/// Set the environment variable <c>TOKENEMBED_MALLOPT=0</c> to leave glibc's defaults (other allocators, e.g. jemalloc,
/// ignore this). The pad is address space, not memory: pages count only once written.
/// </summary>
internal static partial class NativeHeap
{
    private const int MTrimThreshold = -1;
    private const int MTopPad = -2;
    private const int MMmapThreshold = -3;

    /// <summary>Whether the thresholds were set.</summary>
    public static bool Tuned { get; private set; }

    /// <summary>Sets the thresholds once (Linux with glibc only; anything else is left alone).</summary>
    public static void KeepTensorMemory()
    {
        if (Tuned || Environment.GetEnvironmentVariable("TOKENEMBED_MALLOPT") == "0") return;
        try
        {
            Tuned = MallOpt(MMmapThreshold, 32 << 20) == 1 & MallOpt(MTrimThreshold, 512 << 20) == 1 & MallOpt(MTopPad, 64 << 20) == 1;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // musl or another libc: nothing to tune.
        }
    }

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int MallOpt(int param, int value);
}
