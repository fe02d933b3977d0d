using NUnit.Framework;
using TokenEmbed.Loading;
using TokenEmbed.Models.Bert;
using TokenEmbed.Models.Layers;
using TokenEmbed.Runtime;
using TokenEmbed.Tests.Support;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Runtime;

/// <summary>
/// The CPU float32 matmul path (issue 14): the oneDNN switch, its float64 self-test, the 2-D fused-bias linear, fused QKV
/// and the forced fallback, each against an independent reference (float64 products, ONNX Runtime's MiniLM outputs).
/// </summary>
[NonParallelizable]
public sealed class CpuMatmulTests
{
    [OneTimeSetUp]
    public void Init() => TorchRuntime.EnsureInitialized(null);

    [Test]
    public void TheSwitchResolvesOnTheBundledLibtorchAndRestoresThePrecision()
    {
        Assert.That(OneDnnMatmul.Unavailable, Is.Null, "libtorch 2.10 exports at::Context::setFloat32Precision");
        Assert.That(OneDnnMatmul.CurrentPrecision(), Is.EqualTo("none"));
        using (OneDnnMatmul.Enter())
        {
            Assert.That(OneDnnMatmul.CurrentPrecision(), Is.EqualTo("bf16"));
            using (OneDnnMatmul.Enter()) Assert.That(OneDnnMatmul.CurrentPrecision(), Is.EqualTo("bf16"));
            Assert.That(OneDnnMatmul.CurrentPrecision(), Is.EqualTo("bf16"), "a nested scope does not end the outer one");
        }
        Assert.That(OneDnnMatmul.CurrentPrecision(), Is.EqualTo("none"));
    }

    [Test]
    public void SelfTestErrorSeparatesFloat32FromBfloat16Products()
    {
        using var scope = NewDisposeScope();
        var x = randn(128, 384, ScalarType.Float64);
        var w = randn(256, 384, ScalarType.Float64);
        var reference = x.mm(w.t());
        var f32 = x.to(ScalarType.Float32).mm(w.to(ScalarType.Float32).t());
        var bf16 = x.to(ScalarType.BFloat16).to(ScalarType.Float32).mm(w.to(ScalarType.BFloat16).to(ScalarType.Float32).t());
        var e32 = MatmulSelection.RelativeError(f32, reference);
        var e16 = MatmulSelection.RelativeError(bf16, reference);
        TestContext.Out.WriteLine($"relative error: float32 {e32:E2}, bfloat16 inputs {e16:E2}");
        Assert.That(e32, Is.LessThan(GemmSelfTest.Float32Tolerance));
        Assert.That(e16, Is.GreaterThan(GemmSelfTest.Float32Tolerance), "the self-test must reject a bf16 product");
    }

    [Test]
    public void OneDnnProductsAreFloat32ExactHere()
    {
        var test = MatmulSelection.SelfTest();
        TestContext.Out.WriteLine($"self-test: max relative error {test.MaxRelativeError:E2}, oneDNN {test.Speedup:F2}x the default ({CpuFeatures.Current})");
        if (CpuFeatures.Current.AmxBf16) Assert.Ignore("AMX-BF16 CPU: oneDNN computes in bf16 here, Auto keeps the default path.");
        Assert.That(test.IsFloat32, Is.True);
    }

    [Test]
    public void GemmLinearEqualsAFloat64Product([Values] bool bias, [Values] bool oneDnn)
    {
        using var scope = NewDisposeScope();
        var x = randn(3, 17, 64);
        var w = randn(48, 64);
        var b = bias ? randn(48) : null;
        var expected = x.to(ScalarType.Float64).matmul(w.to(ScalarType.Float64).t());
        if (b is not null) expected = expected.add(b.to(ScalarType.Float64));
        Tensor y;
        using (Gemm.Use(oneDnn)) y = Gemm.Linear(x, w, b);
        Assert.That(y.shape, Is.EqualTo(new long[] { 3, 17, 48 }));
        var diff = y.to(ScalarType.Float64).sub(expected).abs().max().item<double>();
        Assert.That(diff, Is.LessThan(1e-4));
        // And it can fail: a wrong bias is seen.
        if (b is not null)
        {
            var wrong = Gemm.Linear(x, w, b.add(Ops.D(0.01)));
            Assert.That(wrong.to(ScalarType.Float64).sub(expected).abs().max().item<double>(), Is.GreaterThan(1e-3));
        }
    }

    [Test]
    public void FusedQkvSharesTheLoadedWeightsAndMatchesTheSeparateLayers()
    {
        using var scope = NewDisposeScope();
        var q = new Dense(32, 32, true, null);
        var k = new Dense(32, 32, true, null);
        var v = new Dense(32, 32, true, null);
        var x = randn(2, 5, 32);
        var separate = cat([q.forward(x), k.forward(x), v.forward(x)], -1);
        using var fused = new FusedProjection(q, k, v);
        fused.Fuse();
        Assert.That(fused.IsFused, Is.True);
        var y = fused.Forward(x);
        Assert.That(y.sub(separate).abs().max().item<float>(), Is.LessThan(1e-5f));
        // The layers' weights are views of the fused tensor, stored [in, out]: the same storage, no second copy.
        Assert.That((q.Weight.storage_offset(), k.Weight.storage_offset(), v.Weight.storage_offset()), Is.EqualTo((0L, 32L, 64L)));
        Assert.That(q.Weight.stride(), Is.EqualTo(new long[] { 1, 96 }));
        // Moving a layer afterwards (a new tensor) falls back to the layers one by one, still correct.
        q.Bind("weight", new TorchSharp.Modules.Parameter(q.Weight.clone(), requires_grad: false));
        Assert.That(fused.IsFused, Is.False);
        Assert.That(fused.Forward(x).sub(separate).abs().max().item<float>(), Is.LessThan(1e-5f));
    }

    [Test]
    public void AutoChoosesOneDnnOnAmdWithAvx512AndSaysSo()
    {
        using var llm = new Llm(TestPaths.MiniLm, new LlmOptions { Device = "cpu" });
        TestContext.Out.WriteLine(llm.Backend);
        Assert.That(llm.Backend, Does.StartWith("cpu, float32, matmul: "));
        var cpu = CpuFeatures.Current;
        if (Environment.GetEnvironmentVariable("TOKENEMBED_CPU_MATMUL") is not null)
            Assert.That(llm.Backend, Does.Contain("libtorch default"));
        else if (cpu.IsAmd && cpu.Avx512 && !cpu.AmxBf16)
            Assert.That(llm.Backend, Does.Contain("matmul: oneDNN"));
        Assert.That(llm.Backend, Does.Contain(cpu.ModelName));
    }

    [Test]
    public void ForcedPathsAgreeWithOnnxRuntime([Values(CpuMatmulPath.Default, CpuMatmulPath.OneDnn)] CpuMatmulPath path)
    {
        using var llm = new Llm(TestPaths.MiniLm, new LlmOptions { Device = "cpu", CpuMatmul = path });
        Assert.That(llm.Backend, Does.Contain(path == CpuMatmulPath.OneDnn ? "oneDNN (forced" : "libtorch default (forced"));
        using var reference = SafeTensorsFile.Open(Path.Combine(TestPaths.MiniLm, "reference.safetensors"));
        var (ids, shape) = Reference.ReadInt64(reference, "main.input_ids");
        var (mask, _) = Reference.ReadInt64(reference, "main.attention_mask");
        var (hidden, hShape) = Reference.ReadFloat32(reference, "main.last_hidden_state");
        int b = (int)shape[0], t = (int)shape[1], h = (int)hShape[2];
        var prompts = Enumerable.Range(0, b).Select(r => Prompt.FromTokenIds(Reference.ValidIds(ids, mask, t, r))).ToArray();
        var outputs = llm.Encode(prompts, PoolingTask.TokenEmbed, new PoolingParams { Normalize = false });
        var max = 0f;
        for (var r = 0; r < b; r++)
            max = Math.Max(max, Reference.MaxAbsDiff(outputs[r].Outputs.Data, Reference.Rows(hidden, t, h, r, prompts[r].TokenIds!.Count)));
        TestContext.Out.WriteLine($"{path}: hidden max |diff| vs ONNX Runtime = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-4f));
    }

    [TestCase("bert", 2)]
    [TestCase("qwen3", 2)]
    [TestCase("llama", 2)]
    public void AttentionProjectionsAreFusedAfterLoading(string golden, int layers)
    {
        using var llm = new Llm(TestPaths.Fixture("goldens", golden), new LlmOptions { Device = "cpu" });
        var loaded = (TokenEmbed.Models.PoolingModel)typeof(Llm).GetField("_model", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(llm)!;
        var fusable = ((nn.Module)loaded.Backbone).modules().OfType<IFusable>().ToList();
        Assert.That(fusable, Has.Count.GreaterThanOrEqualTo(layers));
        var projections = fusable.SelectMany(m => m.GetType().GetFields(System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)
            .Where(f => f.FieldType == typeof(FusedProjection)).Select(f => (FusedProjection)f.GetValue(m)!)).ToList();
        Assert.That(projections, Has.Count.EqualTo(fusable.Count));
        Assert.That(projections.All(p => p.IsFused), Is.True);
        var dense = ((nn.Module)loaded.Backbone).modules().OfType<Dense>().ToList();
        Assert.That(dense.All(d => d.Weight.stride(0) == 1), Is.True, "every linear weight is stored [in, out] (column-major as [out, in])");
    }

    [Test]
    public void AFullyAttendedBatchSkipsTheMaskAndGivesTheSameVectorsAsAPaddedOne()
    {
        // Alone, the prompt's batch has no padding (the encoder skips its additive key mask); next to a longer prompt it is
        // padded and masked. Both must give its vectors.
        using var llm = new Llm(TestPaths.MiniLm, new LlmOptions { Device = "cpu", MaxBatchSize = 2 });
        const string text = "late interaction keeps one vector per token";
        var alone = llm.Encode(text, PoolingTask.TokenEmbed)[0].Outputs;
        var padded = llm.Encode([text, text + " and scores every query token against every document token"], PoolingTask.TokenEmbed)[0].Outputs;
        var max = Reference.MaxAbsDiff(alone.Data, padded.Data);
        TestContext.Out.WriteLine($"unmasked alone vs masked in a padded batch: max |diff| = {max:E2}");
        Assert.That(max, Is.LessThanOrEqualTo(1e-5f));
    }
}
