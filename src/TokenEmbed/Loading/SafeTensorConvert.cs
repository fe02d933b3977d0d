using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace TokenEmbed.Loading;

/// <summary>
/// Vectorized conversions of half-precision and double tensors to float32. Each matches the scalar
/// conversion exactly (<c>(float)Half</c>, bfloat16 bits shifted into the upper half of a float,
/// <c>(float)double</c>), except that a NaN keeps its payload bits instead of being quietened.
/// </summary>
internal static class SafeTensorConvert
{
    /// <summary>Converts IEEE binary16 bit patterns to float32.</summary>
    public static void F16ToF32(ReadOnlySpan<ushort> source, Span<float> destination) => Widen16<HalfBits>(source, destination);

    /// <summary>Converts bfloat16 bit patterns to float32 (they are the upper 16 bits of a float32).</summary>
    public static void BF16ToF32(ReadOnlySpan<ushort> source, Span<float> destination) => Widen16<BFloat16Bits>(source, destination);

    /// <summary>A 16-bit float format: its bits widened to float32 bits, vectorized and scalar.</summary>
    private interface IFloat16Format
    {
        static abstract Vector<uint> ToSingleBits(Vector<uint> bits);
        static abstract float ToSingle(ushort bits);
    }

    private readonly struct HalfBits : IFloat16Format
    {
        public static Vector<uint> ToSingleBits(Vector<uint> bits) => HalfBitsToSingleBits(bits);
        public static float ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);
    }

    private readonly struct BFloat16Bits : IFloat16Format
    {
        public static Vector<uint> ToSingleBits(Vector<uint> bits) => Vector.ShiftLeft(bits, 16);
        public static float ToSingle(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
    }

    // One loop for both formats; the JIT specializes it per struct, so the conversion stays inlined.
    private static void Widen16<TFormat>(ReadOnlySpan<ushort> source, Span<float> destination) where TFormat : struct, IFloat16Format
    {
        if (destination.Length < source.Length) throw new ArgumentException("Destination is too short.", nameof(destination));
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= Vector<ushort>.Count)
        {
            ref ushort src = ref MemoryMarshal.GetReference(source);
            ref uint dst = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
            int step = Vector<ushort>.Count;
            int half = Vector<uint>.Count;
            for (; i <= source.Length - step; i += step)
            {
                var h = Vector.LoadUnsafe(ref src, (nuint)i);
                Vector.Widen(h, out Vector<uint> lo, out Vector<uint> hi);
                Vector.StoreUnsafe(TFormat.ToSingleBits(lo), ref dst, (nuint)i);
                Vector.StoreUnsafe(TFormat.ToSingleBits(hi), ref dst, (nuint)(i + half));
            }
        }
        for (; i < source.Length; i++)
            destination[i] = TFormat.ToSingle(source[i]);
    }

    // Fabian Giesen's half_to_float (magic-number variant): exact for every finite value, infinities and NaNs.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector<uint> HalfBitsToSingleBits(Vector<uint> h)
    {
        var shiftedExp = new Vector<uint>(0x7C00u << 13);
        var o = Vector.ShiftLeft(h & new Vector<uint>(0x7FFFu), 13);
        var exp = o & shiftedExp;
        o += new Vector<uint>((127u - 15u) << 23);
        // Inf/NaN: push the exponent to 255.
        o += Vector.Equals(exp, shiftedExp) & new Vector<uint>((128u - 16u) << 23);
        // Zero/subnormal: renormalize through a float subtraction (exact).
        var sub = Vector.AsVectorUInt32(
            Vector.AsVectorSingle(o + new Vector<uint>(1u << 23)) - Vector.AsVectorSingle(new Vector<uint>(113u << 23)));
        o = Vector.ConditionalSelect(Vector.Equals(exp, Vector<uint>.Zero), sub, o);
        return o | Vector.ShiftLeft(h & new Vector<uint>(0x8000u), 16);
    }

    /// <summary>Converts float64 to float32 (round to nearest even, as <c>(float)double</c>).</summary>
    public static void F64ToF32(ReadOnlySpan<double> source, Span<float> destination)
    {
        if (destination.Length < source.Length) throw new ArgumentException("Destination is too short.", nameof(destination));
        int i = 0;
        if (Vector.IsHardwareAccelerated && source.Length >= Vector<float>.Count)
        {
            ref double src = ref MemoryMarshal.GetReference(source);
            ref float dst = ref MemoryMarshal.GetReference(destination);
            int step = Vector<float>.Count;
            int half = Vector<double>.Count;
            for (; i <= source.Length - step; i += step)
            {
                var a = Vector.LoadUnsafe(ref src, (nuint)i);
                var b = Vector.LoadUnsafe(ref src, (nuint)(i + half));
                Vector.StoreUnsafe(Vector.Narrow(a, b), ref dst, (nuint)i);
            }
        }
        for (; i < source.Length; i++)
            destination[i] = (float)source[i];
    }
}
