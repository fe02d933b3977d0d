using TokenEmbed.Loading;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace TokenEmbed.Models.Layers;

/// <summary>
/// Strict 1:1 loading of a module's parameters from a <see cref="WeightSet"/>: each parameter name (the
/// Hugging Face state-dict name, built from the module's field names) must exist under the prefix, with the
/// same shape. What was read is recorded so the caller can reject unexpected weights.
/// </summary>
internal static class WeightLoader
{
    /// <summary>
    /// Loads every parameter of <paramref name="module"/> from <paramref name="weights"/>[prefix + name], after checking
    /// its shape and that it is stored as a floating-point tensor. A parameter built on the meta device (<see cref="Nn.OnMeta"/>)
    /// is bound to the checkpoint tensor (no initialisation, no second copy); an ordinary one is overwritten in place.
    /// </summary>
    public static void Load(nn.Module module, WeightSet weights, string prefix, ISet<string> consumed)
    {
        using var noGrad = no_grad();
        var modules = module.named_modules().ToDictionary(m => m.name, m => m.module, StringComparer.Ordinal);
        modules[""] = module;
        foreach (var (name, param) in module.named_parameters().ToList())
        {
            var key = Resolve(weights, prefix + name);
            var info = weights.Get(key);
            CheckShape(key, info, param.shape);
            CheckFloat(key, info);
            if (param.is_meta)
            {
                var dot = name.LastIndexOf('.');
                Bind(modules[dot < 0 ? "" : name[..dot]], name[(dot + 1)..], new Parameter(ToTensor(weights, key), requires_grad: false));
                param.Dispose();   // the meta placeholder (some TorchSharp setters, e.g. Embedding's, do not dispose it)
            }
            else
            {
                using var src = ToTensor(weights, key);
                param.copy_(src);
            }
            consumed.Add(key);
        }
    }

    /// <summary>Replaces parameter <paramref name="local"/> of <paramref name="owner"/>: TorchSharp layers through their property, ours through <see cref="IBindable"/>.</summary>
    private static void Bind(nn.Module owner, string local, Parameter value)
    {
        if (owner is IBindable bindable)
        {
            bindable.Bind(local, value);
            return;
        }
        var property = owner.GetType().GetProperty(local, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance);
        if (property is null || !property.CanWrite || !property.PropertyType.IsAssignableFrom(typeof(Parameter)))
            throw new InvalidOperationException($"{owner.GetType().Name} has no settable parameter '{local}'.");
        property.SetValue(owner, value);
    }

    private static void CheckFloat(string key, SafeTensorInfo info)
    {
        if (!info.DType.IsFloatingPoint())
            throw new ModelLoadException(
                $"Weight '{key}' in '{info.FilePath}' has dtype {info.DType.HeaderName()}; the model expects a floating-point tensor (F32, F16, BF16 or F64).",
                info.FilePath, key);
    }

    /// <summary>Reads tensor <paramref name="key"/> as a new float32 CPU tensor with a shape check.</summary>
    public static Tensor ReadFloat32(WeightSet weights, string key, long[] expectedShape, ISet<string> consumed)
    {
        var info = weights.Get(key);
        CheckShape(key, info, expectedShape);
        CheckFloat(key, info);
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

    private static void CheckShape(string key, SafeTensorInfo info, long[] expected)
    {
        if (!info.Shape.SequenceEqual(expected))
            throw new ModelLoadException(
                $"Weight '{key}' in '{info.FilePath}' has shape [{string.Join(", ", info.Shape)}], the model expects [{string.Join(", ", expected)}] " +
                "(sizes from config.json: hidden_size, vocab_size, intermediate_size, max_position_embeddings, the head counts, …).",
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
