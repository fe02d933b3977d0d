using System.Runtime.Intrinsics.X86;
using System.Text;

namespace TokenEmbed.Runtime;

/// <summary>What the CPU is, as far as the matmul choice cares: vendor, model name and the vector / matrix extensions.</summary>
/// <param name="Vendor">CPUID's vendor string (<c>AuthenticAMD</c>, <c>GenuineIntel</c>, …), or the architecture name off x86.</param>
/// <param name="ModelName">CPUID's brand string (what <c>lscpu</c> calls the model name).</param>
/// <param name="Avx512">AVX-512 F.</param>
/// <param name="Avx512Bf16">AVX512_BF16 (bf16 dot products).</param>
/// <param name="AmxBf16">AMX-BF16 tiles (Intel Sapphire Rapids and later): oneDNN really computes in bf16 there.</param>
internal sealed record CpuFeatures(string Vendor, string ModelName, bool Avx512, bool Avx512Bf16, bool AmxBf16)
{
    /// <summary>This machine's CPU.</summary>
    public static CpuFeatures Current { get; } = Detect();

    /// <summary>Whether the vendor is AMD.</summary>
    public bool IsAmd => Vendor == "AuthenticAMD";

    /// <summary>Whether the vendor is Intel.</summary>
    public bool IsIntel => Vendor == "GenuineIntel";

    /// <summary>e.g. <c>AMD EPYC (AuthenticAMD; AVX-512, AVX512_BF16)</c>.</summary>
    public override string ToString()
    {
        var flags = new List<string>();
        if (Avx512) flags.Add("AVX-512");
        if (Avx512Bf16) flags.Add("AVX512_BF16");
        if (AmxBf16) flags.Add("AMX-BF16");
        return $"{ModelName} ({Vendor}{(flags.Count > 0 ? "; " + string.Join(", ", flags) : "")})";
    }

    private static CpuFeatures Detect()
    {
        if (!X86Base.IsSupported)
        {
            var arch = System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture.ToString();
            return new CpuFeatures(arch, arch, false, false, false);
        }
        var (_, b, c, d) = X86Base.CpuId(0, 0);
        var vendor = Ascii(b, d, c);
        var (maxExt, _, _, _) = X86Base.CpuId(unchecked((int)0x80000000), 0);
        var brand = new StringBuilder();
        if ((uint)maxExt >= 0x80000004)
            for (var leaf = 0x80000002u; leaf <= 0x80000004u; leaf++)
            {
                var (ea, eb, ec, ed) = X86Base.CpuId(unchecked((int)leaf), 0);
                brand.Append(Ascii(ea, eb, ec, ed));
            }
        var (_, b7, _, d7) = X86Base.CpuId(7, 0);
        var (a71, _, _, _) = X86Base.CpuId(7, 1);
        var model = brand.ToString().Trim('\0', ' ');
        return new CpuFeatures(
            vendor,
            model.Length > 0 ? model : vendor,
            Avx512: (b7 & (1 << 16)) != 0 && Avx512F.IsSupported,
            Avx512Bf16: (a71 & (1 << 5)) != 0,
            AmxBf16: (d7 & (1 << 22)) != 0);
    }

    private static string Ascii(params int[] registers)
    {
        var bytes = new byte[registers.Length * 4];
        for (var i = 0; i < registers.Length; i++) BitConverter.TryWriteBytes(bytes.AsSpan(i * 4), registers[i]);
        return Encoding.ASCII.GetString(bytes).TrimEnd('\0');
    }
}
