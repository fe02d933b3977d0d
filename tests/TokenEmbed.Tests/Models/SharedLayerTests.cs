using NUnit.Framework;
using TokenEmbed.Models.Layers;
using TokenEmbed.Tests.Support;
using static TorchSharp.torch;

namespace TokenEmbed.Tests.Models;

/// <summary>The shared layers against plain C# computations of the formulas in SPEC.md §1.</summary>
public sealed class SharedLayerTests
{
    [OneTimeSetUp]
    public void Init() => TokenEmbed.Runtime.TorchRuntime.EnsureInitialized(null);

    [Test]
    public void RotaryRotatesHalvesByPositionTimesInverseFrequency()
    {
        const int b = 1, h = 2, t = 5, d = 8;
        const double theta = 10000;
        var x = Reference.Gaussian(b * h * t * d, seed: 3, scale: 1);
        using var rope = new Rotary(d, theta);
        using var pos = arange(t, ScalarType.Int64).unsqueeze(0);
        var (cos, sin) = rope.Tables(pos, ScalarType.Float32);
        using var _c = cos;
        using var _s = sin;
        using var xt = tensor(x, [b, h, t, d]);
        using var y = Rotary.Apply(xt, cos, sin);
        var actual = y.data<float>().ToArray();

        var max = 0.0;
        for (var hh = 0; hh < h; hh++)
        for (var p = 0; p < t; p++)
        for (var i = 0; i < d; i++)
        {
            var k = i % (d / 2);
            var angle = p * (1.0 / Math.Pow(theta, 2.0 * k / d));
            var baseIdx = (hh * t + p) * d;
            var rotated = i < d / 2 ? -x[baseIdx + i + d / 2] : x[baseIdx + i - d / 2];
            var expected = x[baseIdx + i] * Math.Cos(angle) + rotated * Math.Sin(angle);
            max = Math.Max(max, Math.Abs(expected - actual[baseIdx + i]));
        }
        Assert.That(max, Is.LessThan(1e-5));
    }

    [Test]
    public void RmsNormMatchesTheFormula()
    {
        var x = Reference.Gaussian(3 * 16, seed: 5, scale: 2);
        using var norm = new RmsNorm(16, 1e-6);
        using var xt = tensor(x, [3, 16]);
        using var y = norm.forward(xt);
        var actual = y.data<float>().ToArray();
        for (var r = 0; r < 3; r++)
        {
            var ms = Enumerable.Range(0, 16).Average(i => (double)x[r * 16 + i] * x[r * 16 + i]);
            for (var i = 0; i < 16; i++)
                Assert.That(actual[r * 16 + i], Is.EqualTo(x[r * 16 + i] / Math.Sqrt(ms + 1e-6)).Within(1e-5));
        }
    }

    [Test]
    public void MasksCombinePatternAndKeyPadding()
    {
        using var attention = tensor(new long[] { 1, 1, 1, 0 }, [1, 4]);
        using var causal = Attention.CausalPattern(4, CPU);
        using var sliding = Attention.SlidingPattern(4, 1, CPU);
        using var cm = Attention.PatternMask(attention, causal, ScalarType.Float32);
        using var sm = Attention.PatternMask(attention, sliding, ScalarType.Float32);
        var c = cm.data<float>().ToArray();
        var s = sm.data<float>().ToArray();
        for (var q = 0; q < 4; q++)
        for (var k = 0; k < 4; k++)
        {
            var padded = k == 3;
            Assert.That(c[q * 4 + k], Is.EqualTo(k <= q && !padded ? 0f : float.MinValue), $"causal q{q} k{k}");
            Assert.That(s[q * 4 + k], Is.EqualTo(Math.Abs(q - k) <= 1 && !padded ? 0f : float.MinValue), $"sliding q{q} k{k}");
        }
    }

    [Test]
    public void GatedMlpActivatesTheFirstHalfAndGatesWithTheSecond()
    {
        const int rows = 3, inner = 5;
        var x = Reference.Gaussian(rows * 2 * inner, seed: 9, scale: 1.5);
        using var fused = tensor(x, [rows, 2 * inner]);
        using var y = GatedMlp.CombineFused(fused, t => nn.functional.gelu(t));
        var actual = y.data<float>().ToArray();
        Assert.That(y.shape, Is.EqualTo(new long[] { rows, inner }));
        for (var r = 0; r < rows; r++)
        for (var i = 0; i < inner; i++)
        {
            double a = x[r * 2 * inner + i], gate = x[r * 2 * inner + inner + i];
            var gelu = 0.5 * a * (1 + Erf(a / Math.Sqrt(2)));
            Assert.That(actual[r * inner + i], Is.EqualTo(gelu * gate).Within(1e-5), $"row {r} unit {i}");
        }
        Assert.That(fused.data<float>().ToArray(), Is.EqualTo(x), "the input is not modified");

        using var identity = GatedMlp.CombineFused(fused, t => t.alias());
        Assert.That(fused.data<float>().ToArray(), Is.EqualTo(x), "an aliasing activation does not modify the input either");
    }

    [Test]
    public void RotaryInFloat32MatchesFloat32ForHalfInputs()
    {
        var x = Reference.Gaussian(2 * 4 * 8, seed: 4, scale: 1);
        using var rope = new Rotary(8, 160000);
        using var pos = arange(4, ScalarType.Int64).unsqueeze(0);
        var (cos, sin) = rope.Tables(pos, ScalarType.Float32);
        using var _c = cos;
        using var _s = sin;
        using var x32 = tensor(x, [1, 2, 4, 8]);
        using var x16 = x32.to(ScalarType.Float16);
        using var y32 = Rotary.Apply(x32, cos, sin);
        using var y16 = Rotary.ApplyInFloat32(x16, cos, sin);
        Assert.That(y16.dtype, Is.EqualTo(ScalarType.Float16));
        using var back = y16.to(ScalarType.Float32);
        var a = back.data<float>().ToArray();
        var e = y32.data<float>().ToArray();
        Assert.That(Reference.MaxAbsDiff(a, e), Is.LessThan(4e-3)); // float16 rounding of input and output only
    }

    // erf by its Maclaurin series, exact to ~1e-12 in double for the |z| < 4 the seeded inputs give.
    private static double Erf(double z)
    {
        double sum = 0, term = z;
        for (var n = 0; n < 60; n++)
        {
            sum += term / (2 * n + 1);
            term *= -z * z / (n + 1);
        }
        return 2 / Math.Sqrt(Math.PI) * sum;
    }
}
