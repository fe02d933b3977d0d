namespace TokenEmbed.Tests.Support;

/// <summary>
/// A plain-C# (double precision, no TorchSharp) forward of a Llama-style decoder for one unpadded prompt, written from
/// SPEC.md §5/§6: RMSNorm pre-norm, q/k/v projections with optional biases, optional per-head q/k RMSNorm, rotate-half
/// RoPE at positions 0..T−1, causal GQA softmax attention, o_proj, SwiGLU MLP, final norm. It is the expected side for
/// configurations no golden covers (Qwen2's non-zero q/k/v biases); the tests check it against a golden first.
/// </summary>
internal static class ReferenceDecoder
{
    /// <param name="Causal">False: every token attends to every token (bidirectional, e.g. Nemotron colembed).</param>
    /// <param name="FinalNorm">False: the last layer's output without the final norm.</param>
    /// <param name="Prefix">The text model's weight prefix (e.g. <c>language_model.</c>).</param>
    public sealed record Shape(int Hidden, int Heads, int KvHeads, int HeadDim, int Layers, double Eps, double Theta, bool QkNorm,
        bool Causal = true, bool FinalNorm = true, string Prefix = "");

    public static float[] Forward(IReadOnlyDictionary<string, (long[] Shape, float[] Data)> w, int[] ids, Shape s)
    {
        var t = ids.Length;
        var emb = w[s.Prefix + "embed_tokens.weight"].Data;
        var h = ids.Select(id => emb.AsSpan(id * s.Hidden, s.Hidden).ToArray().Select(v => (double)v).ToArray()).ToArray();
        var inv = Enumerable.Range(0, s.HeadDim / 2).Select(i => 1.0 / Math.Pow(s.Theta, 2.0 * i / s.HeadDim)).ToArray();
        for (var l = 0; l < s.Layers; l++)
        {
            var p = $"{s.Prefix}layers.{l}.";
            var x = h.Select(r => Rms(r, w[p + "input_layernorm.weight"].Data, s.Eps)).ToArray();
            var q = x.Select(r => Linear(r, w, p + "self_attn.q_proj")).ToArray();
            var k = x.Select(r => Linear(r, w, p + "self_attn.k_proj")).ToArray();
            var v = x.Select(r => Linear(r, w, p + "self_attn.v_proj")).ToArray();
            for (var i = 0; i < t; i++)
            {
                PerHead(q[i], s.Heads, s.HeadDim, head => Rope(s.QkNorm ? Rms(head, w[p + "self_attn.q_norm.weight"].Data, s.Eps) : head, i, inv));
                PerHead(k[i], s.KvHeads, s.HeadDim, head => Rope(s.QkNorm ? Rms(head, w[p + "self_attn.k_norm.weight"].Data, s.Eps) : head, i, inv));
            }
            var rep = s.Heads / s.KvHeads;
            for (var i = 0; i < t; i++)
            {
                var ctx = new double[s.Heads * s.HeadDim];
                for (var hd = 0; hd < s.Heads; hd++)
                {
                    var kvh = hd / rep;
                    var visible = s.Causal ? i + 1 : t;
                    var scores = new double[visible];
                    for (var j = 0; j < visible; j++)
                    {
                        double dot = 0;
                        for (var d = 0; d < s.HeadDim; d++) dot += q[i][hd * s.HeadDim + d] * k[j][kvh * s.HeadDim + d];
                        scores[j] = dot / Math.Sqrt(s.HeadDim);
                    }
                    var max = scores.Max();
                    var e = scores.Select(z => Math.Exp(z - max)).ToArray();
                    var sum = e.Sum();
                    for (var j = 0; j < visible; j++)
                    for (var d = 0; d < s.HeadDim; d++)
                        ctx[hd * s.HeadDim + d] += e[j] / sum * v[j][kvh * s.HeadDim + d];
                }
                Add(h[i], Linear(ctx, w, p + "self_attn.o_proj"));
            }
            for (var i = 0; i < t; i++)
            {
                var y = Rms(h[i], w[p + "post_attention_layernorm.weight"].Data, s.Eps);
                var gate = Linear(y, w, p + "mlp.gate_proj");
                var up = Linear(y, w, p + "mlp.up_proj");
                var act = gate.Select((g, c) => g / (1 + Math.Exp(-g)) * up[c]).ToArray();
                Add(h[i], Linear(act, w, p + "mlp.down_proj"));
            }
        }
        return h.SelectMany(r => s.FinalNorm ? Rms(r, w[s.Prefix + "norm.weight"].Data, s.Eps) : r).Select(v => (float)v).ToArray();
    }

    private static double[] Rms(double[] x, float[] weight, double eps)
    {
        var ms = x.Sum(v => v * v) / x.Length;
        var r = 1 / Math.Sqrt(ms + eps);
        return x.Select((v, i) => v * r * weight[i]).ToArray();
    }

    private static double[] Linear(double[] x, IReadOnlyDictionary<string, (long[] Shape, float[] Data)> w, string name)
    {
        var (shape, data) = w[name + ".weight"];
        var bias = w.TryGetValue(name + ".bias", out var b) ? b.Data : null;
        var (outF, inF) = ((int)shape[0], (int)shape[1]);
        var y = new double[outF];
        for (var o = 0; o < outF; o++)
        {
            double sum = bias?[o] ?? 0;
            for (var i = 0; i < inF; i++) sum += data[o * inF + i] * x[i];
            y[o] = sum;
        }
        return y;
    }

    private static void PerHead(double[] x, int heads, int headDim, Func<double[], double[]> f)
    {
        for (var hd = 0; hd < heads; hd++)
            f(x.AsSpan(hd * headDim, headDim).ToArray()).CopyTo(x, hd * headDim);
    }

    private static double[] Rope(double[] x, int pos, double[] inv)
    {
        var half = x.Length / 2;
        var o = new double[x.Length];
        for (var i = 0; i < half; i++)
        {
            var (c, s) = (Math.Cos(pos * inv[i]), Math.Sin(pos * inv[i]));
            o[i] = x[i] * c - x[i + half] * s;
            o[i + half] = x[i + half] * c + x[i] * s;
        }
        return o;
    }

    private static void Add(double[] h, double[] y)
    {
        for (var i = 0; i < h.Length; i++) h[i] += y[i];
    }
}
