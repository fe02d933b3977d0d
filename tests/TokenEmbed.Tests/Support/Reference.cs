using System.Runtime.InteropServices;
using TokenEmbed.Loading;

namespace TokenEmbed.Tests.Support;

/// <summary>Reads reference tensors (goldens, ONNX Runtime outputs) and does the plain-C# math the tests compare against.</summary>
internal static class Reference
{
    public static (long[] Data, long[] Shape) ReadInt64(SafeTensorsFile file, string name)
    {
        var info = file.Tensors[name];
        if (info.DType != SafeTensorDType.I64) throw new InvalidDataException($"{name} is {info.DType}, expected I64");
        return (MemoryMarshal.Cast<byte, long>(file.GetBytes(info)).ToArray(), info.Shape);
    }

    public static (float[] Data, long[] Shape) ReadFloat32(SafeTensorsFile file, string name) =>
        (file.ReadAsFloat32(name), file.Tensors[name].Shape);

    /// <summary>Row r of a right-padded [B, T] id batch, cut to its attention-mask length.</summary>
    public static int[] ValidIds(long[] ids, long[] mask, int t, int r)
    {
        var list = new List<int>();
        for (var j = 0; j < t; j++)
            if (mask[r * t + j] == 1) list.Add((int)ids[r * t + j]);
        return list.ToArray();
    }

    /// <summary>[len, h] slice of a [B, T, H] tensor for row r.</summary>
    public static float[] Rows(float[] data, int t, int h, int r, int len) => data.AsSpan(r * t * h, len * h).ToArray();

    public static float[] Normalize(float[] v, int dim)
    {
        var o = new float[v.Length];
        for (var i = 0; i < v.Length / dim; i++)
        {
            double s = 0;
            for (var k = 0; k < dim; k++) s += (double)v[i * dim + k] * v[i * dim + k];
            var n = Math.Max(Math.Sqrt(s), 1e-12);
            for (var k = 0; k < dim; k++) o[i * dim + k] = (float)(v[i * dim + k] / n);
        }
        return o;
    }

    /// <summary>x [n, inF] · Wᵀ (W [outF, inF]) in double.</summary>
    public static float[] Project(float[] x, int inF, float[] w, int outF)
    {
        var n = x.Length / inF;
        var o = new float[n * outF];
        for (var i = 0; i < n; i++)
        for (var j = 0; j < outF; j++)
        {
            double s = 0;
            for (var k = 0; k < inF; k++) s += (double)x[i * inF + k] * w[j * inF + k];
            o[i * outF + j] = (float)s;
        }
        return o;
    }

    /// <summary>Σ over query rows of the max over document rows of the dot product, in double.</summary>
    public static double MaxSim(float[] q, float[] d, int dim)
    {
        double total = 0;
        for (var i = 0; i < q.Length / dim; i++)
        {
            var best = double.NegativeInfinity;
            for (var j = 0; j < d.Length / dim; j++)
            {
                double s = 0;
                for (var k = 0; k < dim; k++) s += (double)q[i * dim + k] * d[j * dim + k];
                best = Math.Max(best, s);
            }
            total += best;
        }
        return total;
    }

    public static float MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"length {a.Length} vs {b.Length}");
        var m = 0f;
        for (var i = 0; i < a.Length; i++)
        {
            var d = Math.Abs(a[i] - b[i]);
            if (float.IsNaN(d)) return float.NaN;
            m = Math.Max(m, d);
        }
        return m;
    }

    /// <summary>Max |a − e| over the positions of [B, T, H] tensors whose attention mask is 1, and how many were compared.</summary>
    public static (float Max, int Compared) MaxAbsDiffValid(float[] actual, float[] expected, long[] mask, int t, int h)
    {
        var max = 0f;
        var compared = 0;
        for (var p = 0; p < mask.Length; p++)
        {
            if (mask[p] != 1) continue;
            max = Math.Max(max, MaxAbsDiff(actual.AsSpan(p * h, h), expected.AsSpan(p * h, h)));
            compared++;
        }
        return (max, compared);
    }

    /// <summary>Seeded N(0, scale²) values (Box–Muller over System.Random).</summary>
    public static float[] Gaussian(int count, int seed, double scale)
    {
        var rng = new Random(seed);
        var o = new float[count];
        for (var i = 0; i < count; i++)
        {
            var u1 = 1.0 - rng.NextDouble();
            var u2 = rng.NextDouble();
            o[i] = (float)(scale * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return o;
    }
}

/// <summary>A temporary folder deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "tokenembed-test-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Copies the named files of <paramref name="source"/> (those that exist) into this folder.</summary>
    public TempFolder CopyFrom(string source, params string[] names)
    {
        foreach (var n in names)
        {
            var src = System.IO.Path.Combine(source, n);
            if (System.IO.File.Exists(src)) System.IO.File.Copy(src, File(n), overwrite: true);
        }
        return this;
    }

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
