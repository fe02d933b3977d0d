using System.Runtime.InteropServices;

namespace TokenEmbed.Runtime;

/// <summary>
/// libtorch's float32 matmul precision switch for its oneDNN (mkldnn) backend, <c>at::Context::setFloat32Precision(MKLDNN,
/// MATMUL, BF16)</c>, which TorchSharp 0.107 does not expose. With it set, libtorch sends float32 <c>mm</c> / <c>addmm</c> to
/// oneDNN's brgemm kernels instead of MKL's <c>sgemm</c> (whose non-Intel code path is slow); the bf16 "fpmath" hint is only
/// applied where the CPU has AMX-BF16, which is why <see cref="MatmulSelection"/> proves float32 accuracy before using it.
/// The entry points are resolved by their exported (mangled) names and never called when any is missing; the enum values
/// are checked through libtorch's own <c>precision2str</c>, so a libtorch that numbered them differently is refused, not
/// misconfigured (an exception thrown inside libtorch would abort the process).
/// </summary>
internal static unsafe class OneDnnMatmul
{
    // at::Float32Backend { GENERIC, CUDA, MKLDNN }, at::Float32Op { ALL, CONV, RNN, MATMUL } (libtorch 2.9+).
    private const int Mkldnn = 2;
    private const int Matmul = 3;

    // Itanium C++ ABI names (Linux, libstdc++): elsewhere the exports are not found and the switch is unavailable.
    private const string GlobalContextName = "_ZN2at13globalContextEv";
    private const string SetName = "_ZN2at7Context19setFloat32PrecisionENS_14Float32BackendENS_9Float32OpENS_16Float32PrecisionE";
    private const string GetName = "_ZNK2at7Context16float32PrecisionENS_14Float32BackendENS_9Float32OpE";
    private const string NameName = "_ZN2at13precision2strB5cxx11ENS_16Float32PrecisionE";

    private static readonly object Gate = new();
    private static bool _resolved;
    private static string? _unavailable;
    private static IntPtr _context;
    private static delegate* unmanaged<IntPtr, int, int, int, void> _set;
    private static delegate* unmanaged<IntPtr, int, int, int> _get;
    private static int _bf16 = -1, _default = -1;
    private static readonly Dictionary<int, string> Names = new();
    private static int _users;

    /// <summary>Why the switch cannot be used (a missing export, an unexpected enum), or null when it can.</summary>
    public static string? Unavailable
    {
        get
        {
            Resolve();
            return _unavailable;
        }
    }

    /// <summary>The current precision of oneDNN float32 matmuls as libtorch names it (<c>none</c>, <c>ieee</c>, <c>bf16</c>, …).</summary>
    public static string CurrentPrecision()
    {
        if (Unavailable is not null) return "unavailable";
        var value = _get(_context, Mkldnn, Matmul);
        lock (Gate) return Names.TryGetValue(value, out var name) ? name : value.ToString(System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// While the returned scope lives, float32 matmuls go to oneDNN (nested and concurrent scopes share one setting: it is
    /// process-wide in libtorch, so it is restored when the last scope ends).
    /// </summary>
    /// <exception cref="PlatformNotSupportedException">The switch is unavailable (a caller that skipped <see cref="Unavailable"/>): never a native call through an unresolved entry point.</exception>
    public static Scope Enter()
    {
        if (Unavailable is { } why) throw new PlatformNotSupportedException($"oneDNN float32 matmuls cannot be switched on: {why}.");
        lock (Gate)
        {
            if (_users++ == 0) _set(_context, Mkldnn, Matmul, _bf16);
        }
        return new Scope(true);
    }

    /// <summary>Ends an <see cref="Enter"/>.</summary>
    public readonly struct Scope(bool active) : IDisposable
    {
        /// <inheritdoc />
        public void Dispose()
        {
            if (!active) return;
            lock (Gate)
            {
                if (--_users == 0) _set(_context, Mkldnn, Matmul, _default);
            }
        }
    }

    private static void Resolve()
    {
        lock (Gate)
        {
            if (_resolved) return;
            _resolved = true;
            try
            {
                var global = TorchRuntime.FindExport(GlobalContextName);
                var set = TorchRuntime.FindExport(SetName);
                var get = TorchRuntime.FindExport(GetName);
                var names = TorchRuntime.FindExport(NameName);
                if (global == IntPtr.Zero || set == IntPtr.Zero || get == IntPtr.Zero)
                {
                    _unavailable = "libtorch does not export at::Context::setFloat32Precision (a libtorch older than 2.9, or another ABI)";
                    return;
                }
                if (names == IntPtr.Zero)
                {
                    _unavailable = "libtorch does not export at::precision2str, so its Float32Precision values cannot be checked";
                    return;
                }
                var toName = (delegate* unmanaged<IntPtr, int, void>)names;
                var values = new Dictionary<string, int>(StringComparer.Ordinal);
                for (var v = 0; v < 4 && !values.ContainsKey("bf16"); v++)
                {
                    var n = StdStringResult(toName, v);
                    if (n is null) break;
                    values[n] = v;
                    Names[v] = n;
                }
                if (!values.TryGetValue("bf16", out _bf16) || !values.ContainsKey("none"))
                {
                    _unavailable = $"libtorch's Float32Precision values are not the expected ones ({string.Join(", ", values.Keys)})";
                    return;
                }
                _context = ((delegate* unmanaged<IntPtr>)global)();
                _set = (delegate* unmanaged<IntPtr, int, int, int, void>)set;
                _get = (delegate* unmanaged<IntPtr, int, int, int>)get;
                // Keep whatever the process had (normally none) as the value to restore.
                _default = _get(_context, Mkldnn, Matmul);
            }
            catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
            {
                _unavailable = e.Message;
            }
        }
    }

    /// <summary>Calls a function returning <c>std::string</c> (Itanium ABI: the result is written through a hidden first argument).</summary>
    private static string? StdStringResult(delegate* unmanaged<IntPtr, int, void> f, int arg)
    {
        // libstdc++'s std::string: { char* data; size_t length; char local[16] or size_t capacity }.
        var buffer = (byte*)NativeMemory.AllocZeroed(64);
        try
        {
            f((IntPtr)buffer, arg);
            var data = *(byte**)buffer;
            var length = *(long*)(buffer + 8);
            if (data != buffer + 16 || length is < 0 or > 15) return null;   // only short names are expected (no heap buffer to free)
            return System.Text.Encoding.ASCII.GetString(data, (int)length);
        }
        finally
        {
            NativeMemory.Free(buffer);
        }
    }
}
