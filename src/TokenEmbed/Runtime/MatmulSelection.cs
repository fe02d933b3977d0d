using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;
using TokenEmbed.Models.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Runtime;

/// <summary>The CPU matmul path a model runs with and why.</summary>
/// <param name="UseOneDnn">Whether the linear layers run under <see cref="OneDnnMatmul"/>.</param>
/// <param name="Description">A line for logs and <see cref="Llm.Backend"/>.</param>
/// <param name="UseKernels">Whether TokenEmbed's own CPU kernels (<see cref="Kernels.AttentionKernel"/>) replace libtorch's
/// where they apply; off when <see cref="CpuMatmulPath.Default"/> is forced (libtorch's kernels throughout).</param>
internal sealed record MatmulPath(bool UseOneDnn, string Description, bool UseKernels = false)
{
    /// <summary>Whether products of any number of rows run on <see cref="Kernels.LinearKernel"/> (where oneDNN replaced MKL).</summary>
    public bool LinearKernels => UseKernels && UseOneDnn;

    /// <summary>Not a CPU float32 model: libtorch's own kernels, nothing to choose.</summary>
    public static MatmulPath NotApplicable(string why) => new(false, why);
}

/// <summary>The outcome of the one-off GEMM self-test.</summary>
/// <param name="MaxRelativeError">max |oneDNN − float64| / max |float64| over the test product.</param>
/// <param name="Speedup">The default path's time over oneDNN's (best of several runs each).</param>
internal sealed record GemmSelfTest(double MaxRelativeError, double Speedup)
{
    /// <summary>
    /// A float32 GEMM with K = 384 is within about 1e-6 of float64; bfloat16 inputs (8-bit mantissa) give about 1e-3. 1e-5
    /// separates them with a wide margin on both sides.
    /// </summary>
    public const double Float32Tolerance = 1e-5;

    /// <summary>Whether oneDNN's product is float32-exact.</summary>
    public bool IsFloat32 => MaxRelativeError < Float32Tolerance;
}

/// <summary>
/// Chooses the CPU float32 matmul path (<see cref="CpuMatmulPath"/>): the capability check (CPU vendor and features, the
/// libtorch exports) and the GEMM self-test run once per process, at the first CPU float32 load.
/// </summary>
internal static class MatmulSelection
{
    private static readonly object Gate = new();
    private static GemmSelfTest? _selfTest;

    /// <summary>The path for a model on <paramref name="device"/> in <paramref name="dtype"/>.</summary>
    /// <exception cref="PlatformNotSupportedException"><see cref="CpuMatmulPath.OneDnn"/> was forced but libtorch does not expose the switch.</exception>
    public static MatmulPath Choose(CpuMatmulPath requested, Device device, ScalarType dtype, ILogger logger)
    {
        if (device.type != DeviceType.CPU) return MatmulPath.NotApplicable($"{device}, {Name(dtype)}");
        var cpu = CpuFeatures.Current;
        if (dtype != ScalarType.Float32) return MatmulPath.NotApplicable($"cpu, {Name(dtype)} (libtorch's kernels; {cpu})");

        MatmulPath path;
        var unavailable = OneDnnMatmul.Unavailable;
        switch (requested)
        {
            case CpuMatmulPath.Default:
                path = new MatmulPath(false, $"cpu, float32, matmul: libtorch default (forced by LlmOptions.CpuMatmul; {cpu})");
                break;
            case CpuMatmulPath.OneDnn:
                if (unavailable is not null)
                    throw new PlatformNotSupportedException($"LlmOptions.CpuMatmul = OneDnn, but {unavailable}. Use CpuMatmulPath.Auto or Default.");
                var forced = SelfTest();
                path = new MatmulPath(true, $"cpu, float32, matmul: oneDNN (forced by LlmOptions.CpuMatmul; self-test max relative error " +
                                            $"{forced.MaxRelativeError.ToString("E1", CultureInfo.InvariantCulture)}; {cpu})");
                if (!forced.IsFloat32)
                    logger.LogWarning("oneDNN float32 matmuls are not float32-exact on this CPU (max relative error {Error:E1}: bfloat16 compute); forced anyway by LlmOptions.CpuMatmul.", forced.MaxRelativeError);
                break;
            default:
                // TOKENEMBED_CPU_MATMUL=default: the escape hatch for a whole process (CI runs the suite once with it).
                path = ForcedDefault(requested)
                    ? new MatmulPath(false, $"cpu, float32, matmul: libtorch default (TOKENEMBED_CPU_MATMUL=default; {cpu})")
                    : Auto(cpu, unavailable);
                break;
        }
        // The escape hatch (Default, forced or by the environment) keeps libtorch's kernels throughout.
        if (!ForcedDefault(requested) && Kernels.AttentionKernel.IsAvailable)
            path = path with
            {
                UseKernels = true,
                // Where oneDNN replaced MKL (AMD), the linear layers' own kernel beats it too; elsewhere MKL keeps products of
                // more than LinearKernel.MaxRows rows (not measured against it).
                Description = path.Description + (path.UseOneDnn
                    ? "; linear layers and attention: TokenEmbed AVX-512 kernels"
                    : "; attention: TokenEmbed AVX-512 kernel"),
            };
        logger.LogInformation("TokenEmbed backend: {Backend}", path.Description);
        return path;
    }

    /// <summary>Whether libtorch's default kernels are forced: by <see cref="CpuMatmulPath.Default"/> or <c>TOKENEMBED_CPU_MATMUL=default</c>.</summary>
    private static bool ForcedDefault(CpuMatmulPath requested) =>
        requested == CpuMatmulPath.Default
        || (requested == CpuMatmulPath.Auto && Environment.GetEnvironmentVariable("TOKENEMBED_CPU_MATMUL") is { } env
            && env.Equals("default", StringComparison.OrdinalIgnoreCase));

    private static MatmulPath Auto(CpuFeatures cpu, string? unavailable)
    {
        if (unavailable is not null)
            return new MatmulPath(false, $"cpu, float32, matmul: libtorch default (oneDNN switch unavailable: {unavailable}; {cpu})");
        var test = SelfTest();
        var figures = $"self-test max relative error {test.MaxRelativeError.ToString("E1", CultureInfo.InvariantCulture)}, " +
                      $"oneDNN {test.Speedup.ToString("F2", CultureInfo.InvariantCulture)}x the default";
        if (!test.IsFloat32)
            return new MatmulPath(false, $"cpu, float32, matmul: libtorch default (oneDNN is not float32-exact here: {figures}; {cpu})");
        // AMD with AVX-512: MKL takes its generic code path there, oneDNN's brgemm is measured 1.7-2.4x faster. Elsewhere
        // (Intel: MKL's own fast path) oneDNN has to win the timing by a clear margin.
        if (cpu.IsAmd && cpu.Avx512)
            return new MatmulPath(true, $"cpu, float32, matmul: oneDNN ({figures}; {cpu})");
        return test.Speedup >= 1.1
            ? new MatmulPath(true, $"cpu, float32, matmul: oneDNN ({figures}; {cpu})")
            : new MatmulPath(false, $"cpu, float32, matmul: libtorch default ({figures}; {cpu})");
    }

    /// <summary>The one-off self-test (cached for the process): accuracy against float64 and timing of both paths.</summary>
    internal static GemmSelfTest SelfTest()
    {
        lock (Gate)
        {
            return _selfTest ??= Run();
        }
    }

    private static GemmSelfTest Run()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // Deterministic inputs without touching the global RNG: smooth, sign-changing values of order 1.
        const int m = 256, k = 384, n = 1152;   // MiniLM's fused QKV over 256 tokens
        var x = arange(Ops.D(0), Ops.D(m * k), Ops.One, ScalarType.Float64).view(m, k).mul(Ops.D(0.37)).sin();
        var w = arange(Ops.D(0), Ops.D(n * k), Ops.One, ScalarType.Float64).view(n, k).mul(Ops.D(0.113)).cos();
        var reference = x.mm(w.t());
        var x32 = x.to(ScalarType.Float32);
        var w32 = w.to(ScalarType.Float32);
        Tensor fast;
        using (OneDnnMatmul.Enter()) fast = x32.mm(w32.t());
        var error = RelativeError(fast, reference);

        var baseline = Best(() => x32.mm(w32.t()), oneDnn: false);
        var oneDnn = Best(() => x32.mm(w32.t()), oneDnn: true);
        return new GemmSelfTest(error, baseline / oneDnn);
    }

    /// <summary>max |product − reference| / max |reference|, in float64.</summary>
    internal static double RelativeError(Tensor product, Tensor reference)
    {
        using var p64 = product.to(ScalarType.Float64);
        using var diff = p64.sub(reference);
        using var absDiff = diff.abs();
        using var absRef = reference.abs();
        return absDiff.max().item<double>() / absRef.max().item<double>();
    }

    private static double Best(Func<Tensor> product, bool oneDnn)
    {
        var best = double.MaxValue;
        for (var i = 0; i < 6; i++)
        {
            var sw = Stopwatch.StartNew();
            using (oneDnn ? OneDnnMatmul.Enter() : default) product().Dispose();
            if (i > 0) best = Math.Min(best, sw.Elapsed.TotalMilliseconds);   // the first run warms the kernels up
        }
        return best;
    }

    private static string Name(ScalarType dtype) => dtype switch
    {
        ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float32 => "float32",
        _ => dtype.ToString().ToLowerInvariant(),
    };
}
