using NUnit.Framework;
using TokenEmbed.Kernels;
using TokenEmbed.Models.Layers;
using TokenEmbed.Runtime;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Kernels;

/// <summary>
/// The linear kernel against plain-C# float64 references: the product over the row counts a short query gives (a partial
/// eight-row tile, one tile, several; on one core and split over two) and over many rows (row blocks with a short last one,
/// odd depths, one and two threads), with and without bias; its epilogues (residual, exact GELU, LayerNorm); the layers'
/// entry point with the kernels on and off; 3-D input; and what it refuses.
/// </summary>
[NonParallelizable]
public sealed class LinearKernelTests
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
    public void MatchesAFloat64ProductForAFewRows(int m, int k, int n, bool withBias)
    {
        using var scope = NewDisposeScope();
        manual_seed(m * 1000 + n);
        var x = randn(m, k);
        var w = randn(n, k).t().contiguous().t();   // stored [in, out], as Dense keeps it
        var b = withBias ? randn(n) : null;
        Assert.That(LinearKernel.Supports(x, w, b), Is.True);
        var expected = Reference(x, w, b);
        foreach (var split in new[] { false, true })
        {
            using var pool = split ? SpinPool.Enter() : default;
            Assert.That(SpinPool.IsActive, Is.EqualTo(split && SpinPool.CanSplit));
            var y = LinearKernel.Run(x, w, b);
            Assert.That(y.shape, Is.EqualTo(new long[] { m, n }));
            var diff = MaxDiff(y, expected);
            TestContext.Out.WriteLine($"{m}x{k}x{n} bias={withBias} split={split}: max |kernel - float64| = {diff:E2}");
            Assert.That(diff, Is.LessThan(1e-4 * Math.Sqrt(k) / 8), $"split={split}");
        }
        if (b is not null)
            Assert.That(MaxDiff(LinearKernel.Run(x, w, b.add(Ops.D(0.01))), expected), Is.GreaterThan(5e-3), "a wrong bias is seen");
    }

    [TestCase(33, 64, 96, true)]       // one block, a short last tile
    [TestCase(203, 384, 384, true)]    // three blocks of 96, 96 and 11 rows
    [TestCase(300, 1536, 384, false)]  // MiniLM's down projection's depth
    [TestCase(130, 37, 64, true)]      // an odd depth
    [TestCase(97, 3000, 32, true)]     // a depth with smaller blocks, one strip
    public void MatchesAFloat64ProductForManyRows(int m, int k, int n, bool withBias)
    {
        using var scope = NewDisposeScope();
        manual_seed(m * 1000 + k);
        var x = randn(m, k);
        var w = randn(n, k).t().contiguous().t();
        var b = withBias ? randn(n) : null;
        Assert.That(LinearKernel.Supports(x, w, b), Is.True);
        var expected = Reference(x, w, b);
        var saved = get_num_threads();
        try
        {
            foreach (var threads in new[] { 1, 2 })
            {
                set_num_threads(threads);
                var diff = MaxDiff(LinearKernel.Run(x, w, b), expected);
                TestContext.Out.WriteLine($"{m}x{k}x{n} bias={withBias} threads={threads}: max |kernel - float64| = {diff:E2}");
                Assert.That(diff, Is.LessThan(1e-4 * Math.Sqrt(k) / 8), $"threads={threads}");
            }
        }
        finally
        {
            set_num_threads(saved);
        }
        // A single wrong input row is seen (every row is computed from its own input).
        x[m - 1, 0] = x[m - 1, 0].add(Ops.D(1));
        Assert.That(MaxDiff(LinearKernel.Run(x, w, b), expected), Is.GreaterThan(1e-2), "the last row's input changed");
    }

    [TestCase(12, true)]
    [TestCase(250, true)]
    [TestCase(250, false)]
    public void AppliesResidualGeluAndLayerNormAsAFloat64ReferenceDoes(int m, bool withBeta)
    {
        using var scope = NewDisposeScope();
        const int k = 96, n = 160;
        manual_seed(m);
        var x = randn(m, k);
        var w = randn(n, k).t().contiguous().t().mul(Ops.D(0.3));
        var b = randn(n);
        var residual = randn(m, n);
        var gamma = randn(n).add(Ops.D(1));
        var beta = withBeta ? randn(n) : null;
        var sums = Reference(x, w, b);
        var res = residual.data<float>().ToArray();
        for (var i = 0; i < sums.Length; i++) sums[i] += res[i];

        var gelu = sums.Select(v => v / 2 * (1 + Support.JinaReference.Erf(v / Math.Sqrt(2)))).ToArray();
        var geluDiff = MaxDiff(LinearKernel.Run(x, w, b, residual, KernelActivation.Gelu), gelu);
        TestContext.Out.WriteLine($"{m} rows: residual + GELU max |kernel - float64| = {geluDiff:E2}");
        Assert.That(geluDiff, Is.LessThan(2e-5));

        var g = gamma.data<float>().ToArray();
        var be = beta?.data<float>().ToArray();
        var normed = new double[sums.Length];
        for (var r = 0; r < m; r++)
        {
            var row = sums.AsSpan(r * n, n);
            var mean = 0.0;
            foreach (var v in row) mean += v;
            mean /= n;
            var variance = 0.0;
            foreach (var v in row) variance += (v - mean) * (v - mean);
            variance /= n;
            for (var j = 0; j < n; j++) normed[r * n + j] = (row[j] - mean) / Math.Sqrt(variance + 1e-12) * g[j] + (be?[j] ?? 0);
        }
        var normDiff = MaxDiff(LinearKernel.Run(x, w, b, residual, gamma: gamma, beta: beta, eps: 1e-12), normed);
        TestContext.Out.WriteLine($"{m} rows: residual + LayerNorm max |kernel - float64| = {normDiff:E2}");
        Assert.That(normDiff, Is.LessThan(2e-5));
        Assert.That(MaxDiff(LinearKernel.Run(x, w, b, residual, gamma: gamma.mul(Ops.D(1.01)), beta: beta, eps: 1e-12), normed), Is.GreaterThan(1e-3),
            "a wrong LayerNorm weight is seen");
        Assert.That(MaxDiff(LinearKernel.Run(x, w, b, gamma: gamma, beta: beta, eps: 1e-12), normed), Is.GreaterThan(1e-3), "a missing residual is seen");
    }

    [Test]
    public void GeluIsWithinAFewFloat32UlpsOfTheExactOne()
    {
        var worst = 0.0;
        var xs = new float[16];
        for (var i = 0; i < 20000; i++)
        {
            for (var l = 0; l < 16; l++) xs[l] = -12f + 24f * (i * 16 + l) / (20000f * 16);
            var y = VectorMath.Gelu(System.Runtime.Intrinsics.Vector512.Create(xs));
            for (var l = 0; l < 16; l++)
            {
                var exact = xs[l] / 2.0 * (1 + Support.JinaReference.Erf(xs[l] / Math.Sqrt(2)));
                worst = Math.Max(worst, Math.Abs(y[l] - exact) / Math.Max(1, Math.Abs(xs[l])));
            }
        }
        TestContext.Out.WriteLine($"max |GELU - exact| / max(1, |x|) on [-12, 12]: {worst:E2}");
        Assert.That(worst, Is.LessThan(2.5e-7));
        var edge = VectorMath.Gelu(System.Runtime.Intrinsics.Vector512.Create(0f, -100f, 100f, float.NegativeInfinity, 1f, -1f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f));
        Assert.That(edge[0], Is.EqualTo(0f));
        Assert.That(edge[1], Is.EqualTo(0f).Within(1e-30f));
        Assert.That(edge[2], Is.EqualTo(100f));
        Assert.That(edge[4], Is.EqualTo(0.8413447f).Within(2e-7f));
        Assert.That(edge[5], Is.EqualTo(-0.1586553f).Within(2e-7f));
    }

    [Test]
    public void TheLayersEntryPointGivesTheSameNumbersWithAndWithoutTheKernel()
    {
        using var scope = NewDisposeScope();
        manual_seed(5);
        var x = randn(3, 70, 96);
        var w = randn(128, 96).t().contiguous().t().mul(Ops.D(0.3));
        var b = randn(128);
        var residual = randn(3, 70, 128);
        using var norm = nn.LayerNorm(128, 1e-12);
        using (no_grad())
        {
            norm.weight!.copy_(randn(128).add(Ops.D(1)));
            norm.bias!.copy_(randn(128));
        }
        var gelu = Activations.Find("gelu");
        var tanhGelu = Activations.Find("gelu_new");   // no in-register form: applied after the kernel's product
        foreach (var epilogue in new Epilogue[] { default, new(residual, Norm: norm), new(Activation: gelu), new(Activation: tanhGelu), new(residual, tanhGelu, norm) })
        {
            Tensor viaKernel, viaLibtorch;
            // 210 rows take the kernel within a SpinPool scope (a forward on the kernels), as the engine opens it.
            using (Gemm.Use(oneDnn: true, kernels: true))
            using (SpinPool.Enter(2)) viaKernel = Gemm.Linear(x, w, b, epilogue);
            using (Gemm.Use(oneDnn: false, kernels: false)) viaLibtorch = Gemm.Linear(x, w, b, epilogue);
            Assert.That(viaKernel.shape, Is.EqualTo(new long[] { 3, 70, 128 }));
            var diff = viaKernel.sub(viaLibtorch).abs().max().item<float>();
            TestContext.Out.WriteLine($"{epilogue.Residual is not null}/{epilogue.Activation?.Name}/{epilogue.Norm is not null}: max |kernel - libtorch| = {diff:E2}");
            Assert.That(diff, Is.LessThan(2e-5f));
        }
        Assert.That(residual.sum().item<float>(), Is.Not.NaN, "the residual is read, not written");
    }

    [Test]
    public void TakesThreeDimensionalInputWithoutReshaping()
    {
        using var scope = NewDisposeScope();
        var x = randn(2, 7, 64);
        var w = randn(96, 64).t().contiguous().t();
        var b = randn(96);
        Tensor y;
        using (SpinPool.Enter()) y = LinearKernel.Run(x, w, b);
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
            using (TokenEmbed.Engine.CpuForwardThreads.Enter(CPU, 16))
                Assert.That(SpinPool.IsActive, Is.True, "a short query on a quiet engine uses the second core");
            Assert.That(SpinPool.IsActive, Is.False, "and lets it go when it ends");
            TokenEmbed.Engine.CpuForwardThreads.WideForwardEnded();
            using (TokenEmbed.Engine.CpuForwardThreads.Enter(CPU, 16))
                Assert.That(SpinPool.IsActive, Is.False, "right after a multi-threaded forward (OpenMP threads still spinning) it keeps to one");
            using (TokenEmbed.Engine.CpuForwardThreads.Enter(CPU, 64))
                Assert.That(SpinPool.IsActive, Is.False, "a larger batch runs on libtorch's threads");
            set_num_threads(1);
            Thread.Sleep(60);
            using (TokenEmbed.Engine.CpuForwardThreads.Enter(CPU, 16))
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
        Assert.That(LinearKernel.Supports(randn(4, 64), randn(96, 64), null), Is.False, "a weight stored [out, in]");
        Assert.That(LinearKernel.Supports(randn(4, 64), randn(80, 64).t().contiguous().t(), null), Is.False, "80 columns: not a multiple of 32");
        Assert.That(LinearKernel.Supports(randn(4, 128).narrow(1, 0, 64), w, null), Is.False, "input not contiguous");
        Assert.That(LinearKernel.Supports(randn(4, 64, ScalarType.Float64), w.to(ScalarType.Float64), null), Is.False, "float64");
        Assert.That(LinearKernel.Supports(randn(4, 64), w, randn(95)), Is.False, "a bias of the wrong size");
        Assert.That(LinearKernel.Supports(randn(2, 4097), randn(32, 4097).t().contiguous().t(), null), Is.False, "deeper than MaxDepth");
        Assert.That(LinearKernel.SupportsResidual(randn(4, 95), randn(4, 64), 96), Is.False, "a residual of another width");
        Assert.That(LinearKernel.SupportsResidual(randn(96, 4).t(), randn(4, 64), 96), Is.False, "a residual not contiguous");
        Assert.That(LinearKernel.SupportsNorm(randn(96), randn(95), 96), Is.False, "a norm bias of the wrong size");
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

/// <summary>Which forwards run on the kernels' own threads, and that such a forward gives libtorch its threads back.</summary>
[NonParallelizable]
public sealed class ForwardsOnTheKernelsTests
{
    [TestCase(384, 12, 1536, "gelu", true)]      // MiniLM
    [TestCase(768, 12, 3072, "gelu", true)]      // BERT-base, XLM-RoBERTa-base
    [TestCase(384, 12, 1536, "gelu_new", false)] // an activation the kernel does not have in registers
    [TestCase(384, 32, 1536, "gelu", false)]     // head size 12: eager attention
    [TestCase(400, 8, 1600, "gelu", false)]      // widths that are not multiples of 32
    public void BertSaysWhetherItsForwardIsKernels(int hidden, int heads, int intermediate, string act, bool expected)
    {
        using var model = new TokenEmbed.Models.Bert.BertModel(new TokenEmbed.Models.Bert.BertConfig(100, hidden, 1, heads, intermediate, act, 64, 2, 1e-12, 0));
        Assert.That(((TokenEmbed.Models.IBackbone)model).RunsOnKernels, Is.EqualTo(expected));
    }

    [Test]
    public void AForwardOnTheKernelsRestoresLibtorchsThreadsAndMatchesTheFallback()
    {
        TorchRuntime.EnsureInitialized(null);
        var saved = get_num_threads();
        set_num_threads(2);
        try
        {
            using var fast = new Llm(Support.TestPaths.MiniLm, new LlmOptions { Device = "cpu", NumThreads = 2 });
            using var fallback = new Llm(Support.TestPaths.MiniLm, new LlmOptions { Device = "cpu", NumThreads = 2, CpuMatmul = CpuMatmulPath.Default });
            // Three prompts of different lengths: a padded batch of more than 32 tokens (a wide forward).
            var texts = new[] { "late interaction keeps a vector for every token", "a query", string.Join(' ', Enumerable.Repeat("retrieval by maximum similarity", 12)) };
            var a = fast.Encode(texts, PoolingTask.TokenEmbed);
            Assert.That(get_num_threads(), Is.EqualTo(2), "libtorch's thread count is restored after the forward");
            Assert.That(SpinPool.IsActive, Is.False, "and the kernels' scope is closed");
            var c = fallback.Encode(texts, PoolingTask.TokenEmbed);
            for (var i = 0; i < texts.Length; i++)
                Assert.That(Support.Reference.MaxAbsDiff(a[i].Outputs.Data, c[i].Outputs.Data), Is.LessThan(1e-5f), $"prompt {i}");
        }
        finally
        {
            set_num_threads(saved);
        }
    }
}
