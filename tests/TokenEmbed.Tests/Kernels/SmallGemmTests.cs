using NUnit.Framework;
using TokenEmbed.Kernels;
using TokenEmbed.Models.Layers;
using TokenEmbed.Runtime;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Kernels;

/// <summary>
/// The few-row linear kernel (issue 14's single query) against a plain-C# float64 product, over the row counts a short
/// query gives (a partial eight-row tile, one tile, several), with and without bias, on one core and split over two, and on
/// 3-D input; and what it refuses.
/// </summary>
[NonParallelizable]
public sealed class SmallGemmTests
{
    [OneTimeSetUp]
    public void Init()
    {
        TorchRuntime.EnsureInitialized(null);
        if (!AttentionKernel.IsAvailable) Assert.Ignore("No AVX-512 here: the kernel is not used on this CPU.");
    }

    [TestCase(1, 384, 1152, true)]
    [TestCase(5, 64, 96, false)]
    [TestCase(16, 384, 384, true)]
    [TestCase(16, 1536, 384, true)]
    [TestCase(32, 384, 1536, false)]
    public void MatchesAFloat64Product(int m, int k, int n, bool withBias)
    {
        using var scope = NewDisposeScope();
        manual_seed(m * 1000 + n);
        var x = randn(m, k);
        var w = randn(n, k).t().contiguous().t();   // stored [in, out], as Dense keeps it
        var b = withBias ? randn(n) : null;
        Assert.That(SmallGemm.Supports(x, w, b), Is.True);
        var expected = Reference(x, w, b);
        foreach (var split in new[] { false, true })
        {
            using var pool = split ? SpinPool.Enter() : default;
            Assert.That(SpinPool.IsActive, Is.EqualTo(split && SpinPool.CanSplit));
            var y = SmallGemm.Run(x, w, b, split);
            Assert.That(y.shape, Is.EqualTo(new long[] { m, n }));
            var diff = MaxDiff(y, expected);
            TestContext.Out.WriteLine($"{m}x{k}x{n} bias={withBias} split={split}: max |kernel - float64| = {diff:E2}");
            Assert.That(diff, Is.LessThan(1e-4 * Math.Sqrt(k) / 8), $"split={split}");
        }
        if (b is not null)
            Assert.That(MaxDiff(SmallGemm.Run(x, w, b.add(Ops.D(0.01)), false), expected), Is.GreaterThan(5e-3), "a wrong bias is seen");
    }

    [Test]
    public void TakesThreeDimensionalInputWithoutReshaping()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 7, 64);
        var w = randn(96, 64).t().contiguous().t();
        var b = randn(96);
        Tensor y;
        using (SpinPool.Enter()) y = SmallGemm.Run(x, w, b, split: true);
        Assert.That(y.shape, Is.EqualTo(new long[] { 2, 7, 96 }));
        Assert.That(MaxDiff(y.view(14, 96), Reference(x.view(14, 64), w, b)), Is.LessThan(1e-4));
        // Through the layers' entry point, with TokenEmbed's kernels on and off: the same numbers.
        Tensor viaKernel, viaLibtorch;
        using (Gemm.Use(oneDnn: false, kernels: true)) viaKernel = Gemm.Linear(x, w, b);
        using (Gemm.Use(oneDnn: false, kernels: false)) viaLibtorch = Gemm.Linear(x, w, b);
        Assert.That(viaKernel.sub(viaLibtorch).abs().max().item<float>(), Is.LessThan(1e-4f));
    }

    [Test]
    public void ASmallBatchSharesItsKernelsOnlyAwayFromMultiThreadedForwards()
    {
        if (!SpinPool.CanSplit) Assert.Ignore("One core: nothing to share.");
        var saved = get_num_threads();
        set_num_threads(2);
        try
        {
            Thread.Sleep(60);
            using (TokenEmbed.Engine.SmallBatchThreads.Enter(CPU, 16))
                Assert.That(SpinPool.IsActive, Is.True, "a short query on a quiet engine uses the second core");
            Assert.That(SpinPool.IsActive, Is.False, "and lets it go when it ends");
            TokenEmbed.Engine.SmallBatchThreads.WideForwardEnded();
            using (TokenEmbed.Engine.SmallBatchThreads.Enter(CPU, 16))
                Assert.That(SpinPool.IsActive, Is.False, "right after a multi-threaded forward (OpenMP threads still spinning) it keeps to one");
            using (TokenEmbed.Engine.SmallBatchThreads.Enter(CPU, 64))
                Assert.That(SpinPool.IsActive, Is.False, "a larger batch runs on libtorch's threads");
            set_num_threads(1);
            Thread.Sleep(60);
            using (TokenEmbed.Engine.SmallBatchThreads.Enter(CPU, 16))
                Assert.That(SpinPool.IsActive, Is.False, "NumThreads = 1 keeps every kernel on one core");
        }
        finally
        {
            set_num_threads(saved);
        }
    }

    [Test]
    public void RefusesWhatItDoesNotCompute()
    {
        using var scope = NewDisposeScope();
        var w = randn(96, 64).t().contiguous().t();
        Assert.That(SmallGemm.Supports(randn(33, 64), w, null), Is.False, "more than 32 rows");
        Assert.That(SmallGemm.Supports(randn(4, 64), randn(96, 64), null), Is.False, "a weight stored [out, in]");
        Assert.That(SmallGemm.Supports(randn(4, 64), randn(80, 64).t().contiguous().t(), null), Is.False, "80 columns: not a multiple of 32");
        Assert.That(SmallGemm.Supports(randn(4, 128).narrow(1, 0, 64), w, null), Is.False, "input not contiguous");
        Assert.That(SmallGemm.Supports(randn(4, 64, ScalarType.Float64), w.to(ScalarType.Float64), null), Is.False, "float64");
        Assert.That(SmallGemm.Supports(randn(4, 64), w, randn(95)), Is.False, "a bias of the wrong size");
    }

    private static double[] Reference(Tensor x, Tensor w, Tensor? b)
    {
        int m = (int)x.shape[0], k = (int)x.shape[1], n = (int)w.shape[0];
        var xa = x.contiguous().data<float>().ToArray();
        var wa = w.contiguous().data<float>().ToArray();   // [n, k] row-major
        var ba = b?.data<float>().ToArray();
        var y = new double[m * n];
        for (var i = 0; i < m; i++)
            for (var j = 0; j < n; j++)
            {
                double acc = ba is null ? 0 : ba[j];
                for (var c = 0; c < k; c++) acc += (double)xa[i * k + c] * wa[j * k + c];
                y[i * n + j] = acc;
            }
        return y;
    }

    private static double MaxDiff(Tensor y, double[] expected)
    {
        var actual = y.contiguous().data<float>().ToArray();
        var max = 0.0;
        for (var i = 0; i < actual.Length; i++) max = Math.Max(max, Math.Abs(actual[i] - expected[i]));
        return max;
    }
}
