using NUnit.Framework;
using TokenEmbed.Kernels;
using TokenEmbed.Models.Layers;
using TokenEmbed.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Kernels;

/// <summary>
/// The CPU attention kernel (issue 14) against an independent plain-C# float64 attention (softmax(Q·Kᵀ·scale + mask)·V,
/// written out loop by loop), over the shapes the families give it: strided Q/K/V views of a fused projection, sequence
/// lengths that are not multiples of the kernel's blocks, key-padding, causal and batch-broadcast masks, fully masked rows,
/// grouped-query heads and several head sizes.
/// </summary>
[NonParallelizable]
public sealed class AttentionKernelTests
{
    private const double Tolerance = 1e-5;

    [OneTimeSetUp]
    public void Init()
    {
        TorchRuntime.EnsureInitialized(null);
        if (!AttentionKernel.IsAvailable) Assert.Ignore("No AVX-512 here: the kernel is not used on this CPU (libtorch's attention runs).");
    }

    [TestCase(1, 2, 2, 16, 16, 32, TestName = "One query block, one key vector")]
    [TestCase(2, 12, 12, 128, 128, 32, TestName = "MiniLM shape")]
    [TestCase(3, 4, 4, 7, 7, 64, TestName = "Short rows (a partial row block and key vector)")]
    [TestCase(2, 4, 4, 37, 53, 16, TestName = "Queries and keys of different lengths")]
    [TestCase(1, 8, 2, 21, 21, 128, TestName = "Grouped-query heads, head size 128")]
    [TestCase(2, 6, 3, 70, 70, 48, TestName = "Head size 48 (a 32 + 16 split)")]
    public void MatchesAFloat64Reference(int b, int h, int hkv, int t, int s, int d)
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = FusedViews(b, h, hkv, t, s, d, seed: b * 100 + t);
        var mask = KeyPadding(b, s, keep: r => s - 3 * r);
        Check(q, k, v, mask, "key padding");
        Check(q, k, v, null, "no mask");
    }

    [Test]
    public void CausalAndBroadcastMasksAndFullyMaskedRowsMatch()
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = FusedViews(2, 4, 4, 33, 33, 32, seed: 5);
        // Causal, broadcast over the batch: [1, 1, T, S].
        var causal = zeros(1, 1, 33, 33).masked_fill(ones(33, 33, ScalarType.Bool).tril().logical_not().view(1, 1, 33, 33), Ops.D(float.MinValue));
        Check(q, k, v, causal, "causal [1, 1, T, S]");
        // Per batch row [B, 1, T, S], with row 0's query 5 seeing no key at all (finfo.min everywhere, as transformers masks).
        var full = randn(2, 1, 33, 33).mul(Ops.D(0.5));
        full[0, 0, 5].fill_(float.MinValue);
        Check(q, k, v, full, "full [B, 1, T, S] with a fully masked row");
    }

    [Test]
    public void TheReferenceSeesAWrongKernelOutput()
    {
        // The comparison can fail: a scale off by 1% or a mask ignored is far outside the tolerance.
        using var scope = NewDisposeScope();
        var (q, k, v) = FusedViews(2, 3, 3, 20, 20, 32, seed: 9);
        var mask = KeyPadding(2, 20, keep: r => 20 - 7 * r);
        var expected = Reference(q, k, v, mask, 1 / Math.Sqrt(32));
        var wrongScale = AttentionKernel.Run(q, k, v, mask, (float)(1.01 / Math.Sqrt(32)));
        var noMask = AttentionKernel.Run(q, k, v, null, (float)(1 / Math.Sqrt(32)));
        Assert.That(MaxDiff(wrongScale, expected), Is.GreaterThan(100 * Tolerance));
        Assert.That(MaxDiff(noMask, expected), Is.GreaterThan(100 * Tolerance));
    }

    [Test]
    public void TakesOnlyWhatItCanCompute()
    {
        using var scope = NewDisposeScope();
        var (q, k, v) = FusedViews(1, 4, 4, 8, 8, 32, seed: 1);
        Assert.That(AttentionKernel.Supports(q, k, v, null), Is.True);
        Assert.That(AttentionKernel.Supports(q.to(ScalarType.Float64), k.to(ScalarType.Float64), v.to(ScalarType.Float64), null), Is.False, "float64");
        var odd = randn(1, 4, 8, 72);
        Assert.That(AttentionKernel.Supports(odd, odd, odd, null), Is.False, "head size 72 (Qwen3-VL's vision tower) is not a multiple of 16");
        var strided = randn(1, 4, 8, 64).narrow(3, 0, 32).transpose(2, 3).contiguous().transpose(2, 3);
        Assert.That(AttentionKernel.Supports(strided, strided, strided, null), Is.False, "head values not contiguous");
        Assert.That(AttentionKernel.Supports(q, k, v, zeros(1, 2, 8, 8)), Is.False, "a mask with a head axis");
        Assert.That(AttentionKernel.Supports(q, randn(1, 3, 8, 32), randn(1, 3, 8, 32), null), Is.False, "4 heads over 3 key/value heads");
    }

    [Test]
    public void ExpIsWithinTwoUlpsOfFloat64AndUnderflowsToZero()
    {
        var worst = 0.0;
        var rng = new Random(3);
        var xs = new float[16];
        for (var round = 0; round < 20000; round++)
        {
            for (var i = 0; i < 16; i++) xs[i] = (float)(-rng.NextDouble() * (round % 2 == 0 ? 10 : 87));
            var e = VectorMath.Exp(System.Runtime.Intrinsics.Vector512.Create(xs));
            for (var i = 0; i < 16; i++)
            {
                var exact = Math.Exp(xs[i]);
                worst = Math.Max(worst, Math.Abs(e[i] - exact) / exact);
            }
        }
        TestContext.Out.WriteLine($"max relative error of Exp on [-87, 0]: {worst:E2}");
        Assert.That(worst, Is.LessThan(2.4e-7), "two float32 ulps");
        var edge = VectorMath.Exp(System.Runtime.Intrinsics.Vector512.Create(0f, -1e-8f, float.NegativeInfinity, -200f, -103f, -1f, -2f, -3f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f));
        Assert.That(edge[0], Is.EqualTo(1f));
        Assert.That(edge[2], Is.EqualTo(0f), "−∞ (a padded column) gives 0, not NaN");
        Assert.That(edge[3], Is.EqualTo(0f));
        Assert.That(edge[4], Is.GreaterThanOrEqualTo(0f).And.LessThan(1e-44f));
    }

    [Test]
    public void MiniLmThroughTheKernelMatchesTheFallbackWhichDoesNotUseIt()
    {
        using var fast = new Llm(Support.TestPaths.MiniLm, new LlmOptions { Device = "cpu" });
        using var fallback = new Llm(Support.TestPaths.MiniLm, new LlmOptions { Device = "cpu", CpuMatmul = CpuMatmulPath.Default });
        TestContext.Out.WriteLine(fast.Backend);
        if (Environment.GetEnvironmentVariable("TOKENEMBED_CPU_MATMUL") is null)
            Assert.That(fast.Backend, Does.EndWith("attention: TokenEmbed AVX-512 kernel").Or.EndWith("linear layers and attention: TokenEmbed AVX-512 kernels"));
        Assert.That(fallback.Backend, Does.Not.Contain("TokenEmbed AVX-512"));
        var texts = new[] { "a short query", "a longer document about late interaction, which keeps a vector for every token of it" };
        var a = fast.Encode(texts, PoolingTask.TokenEmbed);
        var c = fallback.Encode(texts, PoolingTask.TokenEmbed);
        for (var i = 0; i < texts.Length; i++)
            Assert.That(Support.Reference.MaxAbsDiff(a[i].Outputs.Data, c[i].Outputs.Data), Is.LessThan(1e-5f), $"prompt {i}");
    }

    /// <summary>Q, K, V as the families pass them: [B, heads, T, hd] strided views of one fused projection [B, T, (H + 2·Hkv)·hd].</summary>
    private static (Tensor Q, Tensor K, Tensor V) FusedViews(int b, int h, int hkv, int t, int s, int d, int seed)
    {
        manual_seed(seed);
        var width = (h + 2 * hkv) * d;
        var n = Math.Max(t, s);
        var fused = randn(b, n, width);
        var q = fused.narrow(1, 0, t).narrow(2, 0, h * d).view(b, t, h, d).transpose(1, 2);
        var k = fused.narrow(1, 0, s).narrow(2, h * d, hkv * d).view(b, s, hkv, d).transpose(1, 2);
        var v = fused.narrow(1, 0, s).narrow(2, (h + hkv) * d, hkv * d).view(b, s, hkv, d).transpose(1, 2);
        return (q, k, v);
    }

    /// <summary>An additive key-padding mask [B, 1, 1, S]: row r attends to its first <paramref name="keep"/>(r) keys.</summary>
    private static Tensor KeyPadding(int b, int s, Func<int, int> keep)
    {
        var m = new long[b * s];
        for (var r = 0; r < b; r++)
            for (var j = 0; j < s; j++) m[r * s + j] = j < Math.Max(1, keep(r)) ? 1 : 0;
        return Attention.KeyPaddingMask(tensor(m, [b, s]), ScalarType.Float32);
    }

    private static void Check(Tensor q, Tensor k, Tensor v, Tensor? mask, string what)
    {
        Assert.That(AttentionKernel.Supports(q, k, v, mask), Is.True, what);
        var scale = 1 / Math.Sqrt(q.shape[3]);
        var expected = Reference(q, k, v, mask, scale);
        var output = AttentionKernel.Run(q, k, v, mask, (float)scale);
        Assert.That(output.shape, Is.EqualTo(q.shape), what);
        var diff = MaxDiff(output, expected);
        TestContext.Out.WriteLine($"{what}: max |kernel - float64 reference| = {diff:E2}");
        Assert.That(diff, Is.LessThan(Tolerance), what);
        // A small batch that libtorch runs on one thread: the kernel splits its heads over two cores itself.
        var saved = get_num_threads();
        set_num_threads(1);
        try
        {
            Assert.That(MaxDiff(AttentionKernel.Run(q, k, v, mask, (float)scale), expected), Is.LessThan(Tolerance), what + ", one core");
            using (SpinPool.Enter())
                Assert.That(MaxDiff(AttentionKernel.Run(q, k, v, mask, (float)scale), expected), Is.LessThan(Tolerance), what + ", two-core split");
        }
        finally
        {
            set_num_threads(saved);
        }
        // The fused-projection entry (BERT's), when the operands are slices of one: the same numbers, heads merged.
        if (q.shape[1] == k.shape[1] && q.shape[2] == k.shape[2] && FusedOf(q) is { } fused)
        {
            Assert.That(AttentionKernel.SupportsFused(fused, (int)q.shape[1], (int)k.shape[1], mask), Is.True, what);
            var merged = AttentionKernel.RunFused(fused, (int)q.shape[1], (int)k.shape[1], mask, (float)scale);
            Assert.That(merged.shape, Is.EqualTo(new[] { q.shape[0], q.shape[2], q.shape[1] * q.shape[3] }));
            Assert.That(MaxDiff(merged.view(q.shape[0], q.shape[2], q.shape[1], q.shape[3]).transpose(1, 2), expected), Is.LessThan(Tolerance), what + ", fused entry");
        }
    }

    /// <summary>
    /// The contiguous fused projection [B, T, 3·H·hd] whose first slice <paramref name="q"/> is (as <see cref="FusedViews"/>
    /// builds them when T = S and H = Hkv), or null.
    /// </summary>
    private static Tensor? FusedOf(Tensor q)
    {
        long b = q.shape[0], h = q.shape[1], t = q.shape[2], d = q.shape[3], width = 3 * h * d;
        if (q.storage_offset() != 0 || q.stride(0) != t * width || q.stride(2) != width || q.stride(1) != d) return null;
        return q.as_strided([b, t, width], [t * width, width, 1]);
    }

    private static double MaxDiff(Tensor output, double[] expected)
    {
        var actual = output.contiguous().data<float>().ToArray();
        var max = 0.0;
        for (var i = 0; i < actual.Length; i++) max = Math.Max(max, Math.Abs(actual[i] - expected[i]));
        return max;
    }

    /// <summary>Plain float64 attention, [B, H, T, hd] row-major, written out without libtorch or the kernel.</summary>
    private static double[] Reference(Tensor q, Tensor k, Tensor v, Tensor? mask, double scale)
    {
        int b = (int)q.shape[0], h = (int)q.shape[1], t = (int)q.shape[2], d = (int)q.shape[3], hkv = (int)k.shape[1], s = (int)k.shape[2];
        var qa = q.contiguous().data<float>().ToArray();
        var ka = k.contiguous().data<float>().ToArray();
        var va = v.contiguous().data<float>().ToArray();
        var ma = mask?.expand(b, 1, t, s).contiguous().data<float>().ToArray();
        var output = new double[b * h * t * d];
        var p = new double[s];
        for (var bi = 0; bi < b; bi++)
            for (var hi = 0; hi < h; hi++)
            {
                var kv = hi / (h / hkv);
                for (var i = 0; i < t; i++)
                {
                    var max = double.NegativeInfinity;
                    for (var j = 0; j < s; j++)
                    {
                        double dot = 0;
                        for (var c = 0; c < d; c++)
                            dot += (double)qa[((bi * h + hi) * t + i) * d + c] * ka[((bi * hkv + kv) * s + j) * d + c];
                        p[j] = dot * scale + (ma is null ? 0 : ma[(bi * t + i) * s + j]);
                        max = Math.Max(max, p[j]);
                    }
                    double sum = 0;
                    for (var j = 0; j < s; j++) sum += p[j] = Math.Exp(p[j] - max);
                    for (var c = 0; c < d; c++)
                    {
                        double acc = 0;
                        for (var j = 0; j < s; j++) acc += p[j] * va[((bi * hkv + kv) * s + j) * d + c];
                        output[((bi * h + hi) * t + i) * d + c] = acc / sum;
                    }
                }
            }
        return output;
    }
}
