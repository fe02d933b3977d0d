using TokenEmbed.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// Strict 1:1 loading of a module's parameters from a <see cref="WeightSet"/>: each parameter name (the
/// Hugging Face state-dict name, built from the module's field names) must exist under the prefix, with the
/// same shape. What was read is recorded so the caller can reject unexpected weights.
/// </summary>
internal static class WeightLoader
{
    /// <summary>Copies every parameter of <paramref name="module"/> from <paramref name="weights"/>[prefix + name].</summary>
    public static void Load(nn.Module module, WeightSet weights, string prefix, ISet<string> consumed)
    {
        using var noGrad = no_grad();
        foreach (var (name, param) in module.named_parameters())
        {
            var key = Resolve(weights, prefix + name);
            CopyInto(param, weights, key);
            consumed.Add(key);
        }
    }

    /// <summary>Reads tensor <paramref name="key"/> as a new float32 CPU tensor with a shape check.</summary>
    public static Tensor ReadFloat32(WeightSet weights, string key, long[] expectedShape, ISet<string> consumed)
    {
        var info = weights.Get(key);
        CheckShape(key, info, expectedShape);
        consumed.Add(key);
        using var raw = ToTensor(weights, key);
        return raw.to(ScalarType.Float32);
    }

    private static string Resolve(WeightSet weights, string key)
    {
        if (weights.Contains(key)) return key;
        // Very old checkpoints name LayerNorm parameters gamma/beta (transformers renames them on load).
        var legacy = key.EndsWith("LayerNorm.weight", StringComparison.Ordinal) ? key[..^"weight".Length] + "gamma"
            : key.EndsWith("LayerNorm.bias", StringComparison.Ordinal) ? key[..^"bias".Length] + "beta" : null;
        if (legacy != null && weights.Contains(legacy)) return legacy;
        throw new ModelLoadException($"Weight '{key}' is missing from the checkpoint.", tensorName: key);
    }

    private static void CopyInto(Tensor param, WeightSet weights, string key)
    {
        var info = weights.Get(key);
        CheckShape(key, info, param.shape);
        using var src = ToTensor(weights, key);
        param.copy_(src);
    }

    private static void CheckShape(string key, SafeTensorInfo info, long[] expected)
    {
        if (!info.Shape.SequenceEqual(expected))
            throw new ModelLoadException(
                $"Weight '{key}' in '{info.FilePath}' has shape [{string.Join(", ", info.Shape)}], the model expects [{string.Join(", ", expected)}].",
                info.FilePath, key);
    }

    /// <summary>A CPU tensor holding a copy of the stored bytes, in the stored dtype.</summary>
    public static unsafe Tensor ToTensor(WeightSet weights, string key)
    {
        var info = weights.Get(key);
        var dtype = info.DType switch
        {
            SafeTensorDType.F32 => ScalarType.Float32,
            SafeTensorDType.F16 => ScalarType.Float16,
            SafeTensorDType.BF16 => ScalarType.BFloat16,
            SafeTensorDType.F64 => ScalarType.Float64,
            SafeTensorDType.I64 => ScalarType.Int64,
            SafeTensorDType.I32 => ScalarType.Int32,
            _ => throw new ModelLoadException($"Weight '{key}' in '{info.FilePath}' has dtype {info.DType}, which cannot be a model weight.", info.FilePath, key),
        };
        var t = empty(info.Shape, dtype);
        if (info.ByteLength > 0)
        {
            var file = weights.FileOf(key);
            var src = file.GetPointer(info);
            var dst = t.bytes;
            new ReadOnlySpan<byte>(src, checked((int)info.ByteLength)).CopyTo(dst);
        }
        return t;
    }
}
