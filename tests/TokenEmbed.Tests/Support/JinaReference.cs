namespace TokenEmbed.Tests.Support;

/// <summary>
/// An independent plain-C# (double precision, no TorchSharp) forward of the Jina XLM-RoBERTa encoder, written from the
/// upstream math (jinaai/xlm-roberta-flash-implementation: embedding.py, mha.py, rotary.py with interleaved=False,
/// block.py with prenorm=False, mlp.py), one unpadded sequence at a time.
/// </summary>
internal sealed class JinaReference(
    IReadOnlyDictionary<string, (long[] Shape, float[] Data)> weights, string prefix,
    int hidden, int layers, int heads, int intermediate, double eps, double rotaryBase, int rotaryDim, bool tanhGelu = false)
{
    private int Hidden => hidden;

    private float[] W(string name) => weights[prefix + name].Data;

    /// <summary>Last hidden states [n, hidden] (row-major) for one sequence of ids.</summary>
    public double[][] Forward(IReadOnlyList<int> ids)
    {
        var n = ids.Count;
        var word = W("embeddings.word_embeddings.weight");
        var hasTypes = weights.ContainsKey(prefix + "embeddings.token_type_embeddings.weight");
        var tt = hasTypes ? W("embeddings.token_type_embeddings.weight") : null;
        var x = new double[n][];
        for (var i = 0; i < n; i++)
        {
            x[i] = new double[Hidden];
            for (var d = 0; d < Hidden; d++) x[i][d] = word[ids[i] * Hidden + d] + (tt?[d] ?? 0.0);
            x[i] = LayerNorm(x[i], W("emb_ln.weight"), W("emb_ln.bias"));
        }

        var hd = Hidden / heads;
        for (var l = 0; l < layers; l++)
        {
            var p = $"encoder.layers.{l}.";
            var qkv = x.Select(row => Linear(row, W(p + "mixer.Wqkv.weight"), W(p + "mixer.Wqkv.bias"), 3 * Hidden)).ToArray();
            var ctx = new double[n][];
            for (var i = 0; i < n; i++) ctx[i] = new double[Hidden];
            for (var h = 0; h < heads; h++)
            {
                var q = new double[n][];
                var k = new double[n][];
                for (var i = 0; i < n; i++)
                {
                    q[i] = Rotate(qkv[i].AsSpan(h * hd, hd), i);
                    k[i] = Rotate(qkv[i].AsSpan(Hidden + h * hd, hd), i);
                }
                for (var i = 0; i < n; i++)
                {
                    var scores = new double[n];
                    var max = double.NegativeInfinity;
                    for (var j = 0; j < n; j++)
                    {
                        double s = 0;
                        for (var d = 0; d < hd; d++) s += q[i][d] * k[j][d];
                        scores[j] = s / Math.Sqrt(hd);
                        max = Math.Max(max, scores[j]);
                    }
                    double z = 0;
                    for (var j = 0; j < n; j++) z += scores[j] = Math.Exp(scores[j] - max);
                    for (var j = 0; j < n; j++)
                    for (var d = 0; d < hd; d++)
                        ctx[i][h * hd + d] += scores[j] / z * qkv[j][2 * Hidden + h * hd + d];
                }
            }
            for (var i = 0; i < n; i++)
            {
                var attn = Linear(ctx[i], W(p + "mixer.out_proj.weight"), W(p + "mixer.out_proj.bias"), Hidden);
                var h1 = LayerNorm(Add(x[i], attn), W(p + "norm1.weight"), W(p + "norm1.bias"));
                var a = Linear(h1, W(p + "mlp.fc1.weight"), W(p + "mlp.fc1.bias"), intermediate).Select(Gelu).ToArray();
                var m = Linear(a, W(p + "mlp.fc2.weight"), W(p + "mlp.fc2.bias"), Hidden);
                x[i] = LayerNorm(Add(h1, m), W(p + "norm2.weight"), W(p + "norm2.bias"));
            }
        }
        return x;
    }

    /// <summary>GPT-NeoX rotate-half on the first rotaryDim features: pairs (j, j + rd/2), angle = pos / base^(2j/rd).</summary>
    private double[] Rotate(ReadOnlySpan<double> v, int pos)
    {
        var o = v.ToArray();
        var half = rotaryDim / 2;
        for (var j = 0; j < half; j++)
        {
            var angle = pos / Math.Pow(rotaryBase, 2.0 * j / rotaryDim);
            double c = Math.Cos(angle), s = Math.Sin(angle);
            double x1 = v[j], x2 = v[j + half];
            o[j] = x1 * c - x2 * s;
            o[j + half] = x2 * c + x1 * s;
        }
        return o;
    }

    private static double[] Linear(double[] x, float[] w, float[] b, int outF)
    {
        var inF = x.Length;
        var o = new double[outF];
        for (var r = 0; r < outF; r++)
        {
            double s = b[r];
            for (var c = 0; c < inF; c++) s += w[r * inF + c] * x[c];
            o[r] = s;
        }
        return o;
    }

    private static double[] Add(double[] a, double[] b) => a.Select((v, i) => v + b[i]).ToArray();

    private double[] LayerNorm(double[] x, float[] g, float[] b)
    {
        var mean = x.Average();
        var variance = x.Select(v => (v - mean) * (v - mean)).Average();
        var inv = 1.0 / Math.Sqrt(variance + eps);
        return x.Select((v, i) => (v - mean) * inv * g[i] + b[i]).ToArray();
    }

    private double Gelu(double v) => tanhGelu
        ? 0.5 * v * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (v + 0.044715 * v * v * v)))
        : 0.5 * v * (1 + Erf(v / Math.Sqrt(2)));

    /// <summary>erf by its Maclaurin series (|x| ≤ 3) or the continued fraction of erfc (beyond), to ~1e-12.</summary>
    public static double Erf(double x)
    {
        var ax = Math.Abs(x);
        double r;
        if (ax <= 3)
        {
            double term = ax, sum = ax;
            for (var k = 1; k < 200; k++)
            {
                term *= -ax * ax / k;
                var add = term / (2 * k + 1);
                sum += add;
                if (Math.Abs(add) < 1e-17) break;
            }
            r = 2 / Math.Sqrt(Math.PI) * sum;
        }
        else
        {
            // erfc(x) = exp(-x²)/√π · 1/(x + 1/2/(x + 1/(x + 3/2/(x + …)))) evaluated bottom-up.
            double f = ax;
            for (var k = 60; k >= 1; k--) f = ax + k / 2.0 / f;
            r = 1 - Math.Exp(-ax * ax) / Math.Sqrt(Math.PI) / f;
        }
        return x < 0 ? -r : r;
    }
}
