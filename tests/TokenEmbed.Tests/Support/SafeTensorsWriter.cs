using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using TokenEmbed.Loading;

namespace TokenEmbed.Tests.Support;

/// <summary>
/// Writes safetensors files for tests, laid out as the Python library does: 8-byte little-endian header
/// length, the JSON header padded with spaces to a multiple of 8, then the tensors back to back.
/// <see cref="WriteRaw"/> writes any header text, for corrupt-file tests.
/// </summary>
internal static class SafeTensorsWriter
{
    /// <summary>Writes <paramref name="tensors"/> (raw little-endian bytes each) in the given order.</summary>
    public static void Write(
        string path,
        IEnumerable<(string Name, SafeTensorDType DType, long[] Shape, byte[] Data)> tensors,
        IReadOnlyDictionary<string, string>? metadata = null)
    {
        var list = tensors.ToList();
        using var json = new MemoryStream();
        using (var w = new Utf8JsonWriter(json))
        {
            w.WriteStartObject();
            if (metadata != null)
            {
                w.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) w.WriteString(key, value);
                w.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, data) in list)
            {
                w.WriteStartObject(name);
                w.WriteString("dtype", dtype.HeaderName());
                w.WriteStartArray("shape");
                foreach (var d in shape) w.WriteNumberValue(d);
                w.WriteEndArray();
                w.WriteStartArray("data_offsets");
                w.WriteNumberValue(offset);
                w.WriteNumberValue(offset + data.Length);
                w.WriteEndArray();
                w.WriteEndObject();
                offset += data.Length;
            }
            w.WriteEndObject();
        }
        var header = json.ToArray();
        int padded = (header.Length + 7) / 8 * 8;
        var headerPadded = new byte[padded];
        header.CopyTo(headerPadded, 0);
        headerPadded.AsSpan(header.Length).Fill((byte)' ');

        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)padded);
        file.Write(prefix);
        file.Write(headerPadded);
        foreach (var t in list) file.Write(t.Data);
    }

    /// <summary>Writes float32 tensors (in the dictionary's enumeration order).</summary>
    public static void WriteF32(string path, IDictionary<string, (long[] Shape, float[] Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null) =>
        Write(path, tensors.Select(t => (t.Key, SafeTensorDType.F32, t.Value.Shape, Encode(SafeTensorDType.F32, t.Value.Data))), metadata);

    /// <summary>
    /// Writes a file from raw parts: the 8-byte length prefix (<paramref name="declaredHeaderLength"/>, or the
    /// header's UTF-8 length), the header text unpadded, then <paramref name="data"/>.
    /// </summary>
    public static void WriteRaw(string path, string headerJson, byte[]? data = null, ulong? declaredHeaderLength = null)
    {
        var header = Encoding.UTF8.GetBytes(headerJson);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None);
        Span<byte> prefix = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(prefix, declaredHeaderLength ?? (ulong)header.Length);
        file.Write(prefix);
        file.Write(header);
        if (data != null) file.Write(data);
    }

    /// <summary>Encodes floats as a floating-point dtype (F32, F16 via <see cref="Half"/>, BF16 by truncation, F64).</summary>
    public static byte[] Encode(SafeTensorDType dtype, float[] values)
    {
        switch (dtype)
        {
            case SafeTensorDType.F32:
                return MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
            case SafeTensorDType.F64:
                return MemoryMarshal.AsBytes(values.Select(v => (double)v).ToArray().AsSpan()).ToArray();
            case SafeTensorDType.F16:
                return MemoryMarshal.AsBytes(values.Select(v => BitConverter.HalfToUInt16Bits((Half)v)).ToArray().AsSpan()).ToArray();
            case SafeTensorDType.BF16:
                return MemoryMarshal.AsBytes(values.Select(v => (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)).ToArray().AsSpan()).ToArray();
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Not a floating-point dtype.");
        }
    }

    /// <summary>The bytes of any unmanaged array (little-endian on every supported platform).</summary>
    public static byte[] Bytes<T>(T[] values) where T : unmanaged => MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
}
