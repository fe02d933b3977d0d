namespace TokenEmbed.Benchmarks;

/// <summary>
/// Synthetic, reproducible token-id prompts for all-MiniLM-L6-v2 (bert-base-uncased vocabulary).
/// Each prompt is <c>[CLS] w1 ... w(length-2) [SEP]</c>, where the wi are drawn from the ordinary-word
/// range of the vocabulary (ids 1996..29611 inclusive), so no special or [unused] tokens appear.
/// </summary>
internal static class MiniLmTokenIds
{
    public const int Cls = 101;
    public const int Sep = 102;
    public const int Pad = 0;
    public const int FirstWordId = 1996;
    public const int LastWordId = 29611;

    /// <summary>
    /// <paramref name="count"/> prompts of exactly <paramref name="length"/> ids each, from a
    /// <see cref="Random"/> seeded with <paramref name="seed"/>.
    /// </summary>
    public static int[][] Make(int count, int length, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 2);

        var rng = new Random(seed);
        var prompts = new int[count][];
        for (int p = 0; p < count; p++)
        {
            var ids = new int[length];
            ids[0] = Cls;
            for (int i = 1; i < length - 1; i++)
                ids[i] = rng.Next(FirstWordId, LastWordId + 1);
            ids[length - 1] = Sep;
            prompts[p] = ids;
        }
        return prompts;
    }

    /// <summary>
    /// Packs prompts into a row-major [batch, seqLen] batch, right-padded with 0 to the longest prompt;
    /// the mask is 1 on real tokens and 0 on padding. seqLen = ids.Length / prompts.Length.
    /// </summary>
    public static (long[] ids, long[] mask) ToBatch(int[][] prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        int seqLen = 0;
        foreach (var p in prompts)
            seqLen = Math.Max(seqLen, p.Length);

        var ids = new long[prompts.Length * seqLen];
        var mask = new long[prompts.Length * seqLen];
        for (int b = 0; b < prompts.Length; b++)
        {
            var p = prompts[b];
            int row = b * seqLen;
            for (int t = 0; t < p.Length; t++)
            {
                ids[row + t] = p[t];
                mask[row + t] = 1;
            }
        }
        return (ids, mask);
    }
}
