using System.Buffers.Binary;
using System.Text;

namespace TokenEmbed.Runtime;

/// <summary>
/// Marks one symbol-version requirement of an ELF64 little-endian shared object as weak
/// (<c>VER_FLG_WEAK</c> in the <c>vna_flags</c> of its <c>.gnu.version_r</c> entry), so that the dynamic loader
/// accepts a libstdc++ that lacks that version as long as no symbol bound to it is actually needed.
/// </summary>
/// <remarks>
/// TorchSharp 0.107's <c>libLibTorchSharp.so</c> is linked by GCC 13 and names <c>GLIBCXX_3.4.32</c> for a single
/// symbol (<c>std::ios_base_library_init()</c>) that is referenced but never called; Debian 12 / Ubuntu 22.04
/// ship a libstdc++ up to <c>GLIBCXX_3.4.30</c>. The patched copy is kept in a per-user cache, never in place.
/// </remarks>
internal static class ElfVersionPatcher
{
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlgWeak = 0x2;

    /// <summary>Returns whether <paramref name="image"/> requires <paramref name="version"/> (weak or not).</summary>
    public static bool RequiresVersion(byte[] image, string version, out bool alreadyWeak)
    {
        alreadyWeak = false;
        var found = false;
        var weak = true;
        Visit(image, version, (flagsOffset) =>
        {
            found = true;
            if ((BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(flagsOffset)) & VerFlgWeak) == 0) weak = false;
        });
        alreadyWeak = found && weak;
        return found;
    }

    /// <summary>Sets <c>VER_FLG_WEAK</c> on every requirement of <paramref name="version"/>; returns how many were changed.</summary>
    public static int MarkWeak(byte[] image, string version)
    {
        var changed = 0;
        Visit(image, version, flagsOffset =>
        {
            var flags = BinaryPrimitives.ReadUInt16LittleEndian(image.AsSpan(flagsOffset));
            if ((flags & VerFlgWeak) != 0) return;
            BinaryPrimitives.WriteUInt16LittleEndian(image.AsSpan(flagsOffset), (ushort)(flags | VerFlgWeak));
            changed++;
        });
        return changed;
    }

    private static void Visit(byte[] image, string version, Action<int> onFlags)
    {
        var s = image.AsSpan();
        if (s.Length < 64 || s[0] != 0x7f || s[1] != (byte)'E' || s[2] != (byte)'L' || s[3] != (byte)'F')
            throw new InvalidDataException("not an ELF file");
        if (s[4] != 2 || s[5] != 1) throw new InvalidDataException("only ELF64 little-endian is supported");
        var shoff = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(s[0x28..]));
        int shentsize = BinaryPrimitives.ReadUInt16LittleEndian(s[0x3A..]);
        int shnum = BinaryPrimitives.ReadUInt16LittleEndian(s[0x3C..]);
        if (shentsize < 64 || shoff <= 0 || (long)shoff + (long)shentsize * shnum > s.Length)
            throw new InvalidDataException("section header table out of bounds");

        for (var i = 0; i < shnum; i++)
        {
            var sh = s.Slice(shoff + i * shentsize, shentsize);
            if (BinaryPrimitives.ReadUInt32LittleEndian(sh[4..]) != ShtGnuVerneed) continue;
            var offset = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x18..]));
            var size = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(sh[0x20..]));
            var link = (int)BinaryPrimitives.ReadUInt32LittleEndian(sh[0x28..]);
            if (link >= shnum || (long)offset + size > s.Length) throw new InvalidDataException(".gnu.version_r out of bounds");
            var strSh = s.Slice(shoff + link * shentsize, shentsize);
            var strOff = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(strSh[0x18..]));
            var strSize = checked((int)BinaryPrimitives.ReadUInt64LittleEndian(strSh[0x20..]));
            if ((long)strOff + strSize > s.Length) throw new InvalidDataException("string table out of bounds");
            var strtab = s.Slice(strOff, strSize);

            var need = offset;
            for (var guard = 0; guard < 4096; guard++)
            {
                if (need + 16 > offset + size) throw new InvalidDataException("Verneed entry out of bounds");
                int cnt = BinaryPrimitives.ReadUInt16LittleEndian(s[(need + 2)..]);
                var aux = need + (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(need + 8)..]);
                var next = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(need + 12)..]);
                for (var j = 0; j < cnt; j++)
                {
                    if (aux + 16 > offset + size) throw new InvalidDataException("Vernaux entry out of bounds");
                    var nameOff = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(aux + 8)..]);
                    if (CStringEquals(strtab, nameOff, version)) onFlags(aux + 4);
                    var auxNext = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(aux + 12)..]);
                    if (auxNext == 0) break;
                    aux += auxNext;
                }
                if (next == 0) break;
                need += next;
            }
        }
    }

    private static bool CStringEquals(ReadOnlySpan<byte> strtab, int offset, string value)
    {
        if (offset < 0 || offset >= strtab.Length) return false;
        var rest = strtab[offset..];
        var end = rest.IndexOf((byte)0);
        if (end < 0) return false;
        return rest[..end].SequenceEqual(Encoding.ASCII.GetBytes(value));
    }
}
