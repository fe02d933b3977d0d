namespace TokenEmbed.Loading;

/// <summary>One tensor of a safetensors file, as its header describes it (already validated).</summary>
/// <param name="Name">The tensor's name inside its file (without any key prefix a <see cref="WeightSet"/> adds).</param>
/// <param name="DType">The element type.</param>
/// <param name="Shape">The dimensions, outermost first; empty for a scalar.</param>
/// <param name="DataOffset">The absolute offset of the first byte in the file (8 + header length + begin).</param>
/// <param name="ByteLength">The number of bytes (element count × element size).</param>
/// <param name="FilePath">The full path of the file that holds the tensor.</param>
internal sealed record SafeTensorInfo(string Name, SafeTensorDType DType, long[] Shape, long DataOffset, long ByteLength, string FilePath)
{
    /// <summary>The number of elements (the product of <see cref="Shape"/>; 1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long count = 1;
            foreach (var d in Shape) count = checked(count * d);
            return count;
        }
    }

    /// <summary>The shape as text, e.g. "[1000, 64]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
