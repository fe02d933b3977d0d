using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// Tensor arithmetic with scalars that stay alive. TorchSharp turns every numeric argument — and the implicit
/// <c>alpha = 1</c> of <c>a + b</c>, <c>add_</c>, <c>sub</c> — into a finalizable <see cref="Scalar"/> whose last managed
/// use is reading its handle, so a GC triggered by another thread during the native call can free it mid-call (seen as a
/// "Scalar.h INTERNAL ASSERT" under image workloads). These helpers pass cached scalars that are never collected.
/// </summary>
internal static class Ops
{
    private static readonly ConcurrentDictionary<double, Scalar> Doubles = new();
    private static readonly ConcurrentDictionary<long, Scalar> Longs = new();

    /// <summary>The integer 1 (the alpha of an addition).</summary>
    public static readonly Scalar One = L(1);

    /// <summary>A cached floating-point scalar.</summary>
    public static Scalar D(double value) => Doubles.GetOrAdd(value, v => v.ToScalar());

    /// <summary>A cached integer scalar (for integer tensors, where a floating scalar would change the result type).</summary>
    public static Scalar L(long value) => Longs.GetOrAdd(value, v => v.ToScalar());

    /// <summary><c>a + b</c>.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.add(b, One);

    /// <summary><c>a += b</c>, in place; returns <paramref name="a"/>.</summary>
    public static Tensor AddInPlace(Tensor a, Tensor b) => a.add_(b, One);

}
