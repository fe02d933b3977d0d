namespace TokenEmbed;

/// <summary>A pooled result: a dense row-major float32 array and its shape.</summary>
public sealed class PoolingOutput
{
    /// <summary>Creates the output.</summary>
    /// <param name="data">Row-major values.</param>
    /// <param name="shape">The shape: <c>[num_tokens, dim]</c> for TokenEmbed, <c>[dim]</c> for Embed.</param>
    public PoolingOutput(float[] data, int[] shape)
    {
        Data = data;
        Shape = shape;
    }

    /// <summary>Row-major values.</summary>
    public float[] Data { get; }

    /// <summary>The shape: <c>[num_tokens, dim]</c> for TokenEmbed, <c>[dim]</c> for Embed.</summary>
    public int[] Shape { get; }

    /// <summary>Row <paramref name="index"/> of a 2-D output (one token's vector).</summary>
    /// <param name="index">The row.</param>
    public ReadOnlySpan<float> Row(int index)
    {
        if (Shape.Length != 2) throw new InvalidOperationException("Row() needs a 2-D output (TokenEmbed).");
        if ((uint)index >= (uint)Shape[0]) throw new ArgumentOutOfRangeException(nameof(index));
        return Data.AsSpan(index * Shape[1], Shape[1]);
    }
}
