using System.Buffers.Binary;
using System.IO.Hashing;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text;

namespace TokenEmbed.Retrieval;

/// <summary>One document as the index file lists it.</summary>
/// <param name="Id">The document's id.</param>
/// <param name="Tokens">Its number of token vectors.</param>
/// <param name="VectorOffset">The element offset of its first value in the vectors section.</param>
/// <param name="Codes">Its unique centroids, or null when the file has no candidate stage.</param>
internal sealed record IndexEntry(string Id, int Tokens, long VectorOffset, int[]? Codes);

/// <summary>
/// The saved index, version 2 (little-endian). A 128-byte header: magic <c>TEMVIDX2</c>, version, dimension, precision
/// (0 float32, 1 float16), document count, token count, centroid count (0: no candidate stage), the token count the
/// centroids were trained on, then offset and length of the directory, vectors and stage sections, and two XxHash3
/// checksums (header bytes 0–95 + directory + stage; vectors). The directory lists each document (id length, UTF-8 id,
/// token count, unique-centroid count); the vectors section (64-byte aligned) holds every document's vectors in that
/// order, so that it can be memory-mapped and read in place; the stage section holds the centroids (float32) and each
/// document's unique centroids (int32). The file ends with the magic again.
/// </summary>
internal static class IndexFile
{
    public const string Magic = "TEMVIDX2";
    private const int Version = 2;
    private const int HeaderSize = 128;

    /// <summary>Writes the file at <paramref name="path"/> through a temporary file renamed over it.</summary>
    public static void Write(string path, int dim, VectorPrecision precision, IReadOnlyList<(string Id, int Tokens, int[]? Codes)> documents,
        Func<int, ReadOnlySpan<byte>> vectorBytes, CentroidStage? stage)
    {
        var tmp = path + ".tmp";
        var meta = new XxHash3();
        var vectorsHash = new XxHash3();
        long tokens = documents.Sum(d => (long)d.Tokens);
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.ReadWrite, FileShare.None))
        {
            file.Write(new byte[HeaderSize]);
            var directoryOffset = file.Position;
            using (var w = new BinaryWriter(file, Encoding.UTF8, leaveOpen: true))
            {
                foreach (var d in documents)
                {
                    var id = Encoding.UTF8.GetBytes(d.Id);
                    w.Write(id.Length);
                    w.Write(id);
                    w.Write(d.Tokens);
                    w.Write(stage is null ? 0 : d.Codes!.Length);
                }
            }
            var directoryLength = file.Position - directoryOffset;
            Hash(meta, file, directoryOffset, directoryLength);
            Pad(file, 64);
            var vectorsOffset = file.Position;
            for (var i = 0; i < documents.Count; i++)
            {
                var bytes = vectorBytes(i);
                vectorsHash.Append(bytes);
                file.Write(bytes);
            }
            var vectorsLength = file.Position - vectorsOffset;
            var stageOffset = file.Position;
            if (stage is not null)
            {
                using var w = new BinaryWriter(file, Encoding.UTF8, leaveOpen: true);
                foreach (var v in stage.Centroids) w.Write(v);
                foreach (var d in documents)
                    foreach (var c in d.Codes!) w.Write(c);
            }
            var stageLength = file.Position - stageOffset;
            Hash(meta, file, stageOffset, stageLength);
            file.Write(Encoding.ASCII.GetBytes(Magic));

            var header = new byte[HeaderSize];
            Encoding.ASCII.GetBytes(Magic).CopyTo(header, 0);
            var h = header.AsSpan();
            BinaryPrimitives.WriteInt32LittleEndian(h[8..], Version);
            BinaryPrimitives.WriteInt32LittleEndian(h[12..], dim);
            BinaryPrimitives.WriteInt32LittleEndian(h[16..], precision == VectorPrecision.Float16 ? 1 : 0);
            BinaryPrimitives.WriteInt32LittleEndian(h[20..], documents.Count);
            BinaryPrimitives.WriteInt64LittleEndian(h[24..], tokens);
            BinaryPrimitives.WriteInt32LittleEndian(h[32..], stage?.Count ?? 0);
            BinaryPrimitives.WriteInt64LittleEndian(h[40..], stage?.TrainedTokens ?? 0);
            BinaryPrimitives.WriteInt64LittleEndian(h[48..], directoryOffset);
            BinaryPrimitives.WriteInt64LittleEndian(h[56..], directoryLength);
            BinaryPrimitives.WriteInt64LittleEndian(h[64..], vectorsOffset);
            BinaryPrimitives.WriteInt64LittleEndian(h[72..], vectorsLength);
            BinaryPrimitives.WriteInt64LittleEndian(h[80..], stageOffset);
            BinaryPrimitives.WriteInt64LittleEndian(h[88..], stageLength);
            meta.Append(h[..96]);
            BinaryPrimitives.WriteUInt64LittleEndian(h[96..], meta.GetCurrentHashAsUInt64());
            BinaryPrimitives.WriteUInt64LittleEndian(h[104..], vectorsHash.GetCurrentHashAsUInt64());
            file.Position = 0;
            file.Write(header);
            file.Flush(flushToDisk: true);
        }
        File.Move(tmp, path, overwrite: true);
    }

    private static void Hash(XxHash3 hash, FileStream file, long offset, long length)
    {
        var end = file.Position;
        file.Position = offset;
        var buffer = new byte[1 << 16];
        for (var left = length; left > 0;)
        {
            var n = file.Read(buffer, 0, (int)Math.Min(buffer.Length, left));
            if (n <= 0) throw new IOException("The index file could not be read back while writing it.");
            hash.Append(buffer.AsSpan(0, n));
            left -= n;
        }
        file.Position = end;
    }

    private static void Pad(FileStream file, int alignment)
    {
        var pad = (int)((alignment - file.Position % alignment) % alignment);
        if (pad > 0) file.Write(new byte[pad]);
    }

    /// <summary>What <see cref="Open"/> read: the header's values, the documents and the mapped file.</summary>
    public sealed record Contents(int Dimension, VectorPrecision Precision, IndexEntry[] Documents, float[]? Centroids, int CentroidCount,
        long TrainedTokens, MappedFile File, long VectorsOffset);

    /// <summary>
    /// Maps and checks an index file: the header's fields and section bounds, both checksums, the directory (positive token
    /// counts that add up, unique ids, centroid numbers in range) and the end signature.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is not a version-2 index, or is truncated or corrupt; the message names the file and the place.</exception>
    public static Contents Open(string path)
    {
        var length = new FileInfo(path).Length;
        InvalidDataException Bad(string what) => new($"'{path}' is not a valid TokenEmbed index: {what}.");
        if (length < HeaderSize + Magic.Length) throw Bad($"the file has {length} bytes, fewer than an index header (truncated?)");
        var file = MappedFile.Open(path, length);
        try
        {
            var h = file.Bytes(0, HeaderSize);
            var magic = Encoding.ASCII.GetString(h[..8]);
            if (magic == "TEMVIDX1") throw Bad("it is a version-1 index, written before memory-mapped storage; save it again with this version");
            if (magic != Magic) throw Bad("wrong file signature at byte 0");
            if (BinaryPrimitives.ReadInt32LittleEndian(h[8..]) is var version and not Version) throw Bad($"unknown format version {version}");
            var dim = BinaryPrimitives.ReadInt32LittleEndian(h[12..]);
            if (dim <= 0 || dim > 1 << 16) throw Bad($"dimension {dim} (byte 12)");
            var precision = BinaryPrimitives.ReadInt32LittleEndian(h[16..]) switch
            {
                0 => VectorPrecision.Float32,
                1 => VectorPrecision.Float16,
                var p => throw Bad($"precision code {p} (byte 16)"),
            };
            var count = BinaryPrimitives.ReadInt32LittleEndian(h[20..]);
            var tokens = BinaryPrimitives.ReadInt64LittleEndian(h[24..]);
            var centroids = BinaryPrimitives.ReadInt32LittleEndian(h[32..]);
            var trained = BinaryPrimitives.ReadInt64LittleEndian(h[40..]);
            if (count < 0 || tokens < count || centroids < 0 || trained < 0) throw Bad($"counts out of range ({count} documents, {tokens} vectors, {centroids} centroids)");
            long Field(int at) => BinaryPrimitives.ReadInt64LittleEndian(file.Bytes(at, 8));
            var (dirOff, dirLen, vecOff, vecLen, stageOff, stageLen) = (Field(48), Field(56), Field(64), Field(72), Field(80), Field(88));
            var width = precision == VectorPrecision.Float16 ? 2 : 4;
            var end = length - Magic.Length;
            if (dirOff != HeaderSize || dirLen < 0 || vecOff < dirOff + dirLen || vecOff % 64 != 0 || vecLen < 0 || stageOff != vecOff + vecLen
                || stageLen < 0 || stageOff + stageLen != end)
                throw Bad($"section bounds do not fit a file of {length} bytes (truncated or cut?)");
            if (vecLen != tokens * dim * width) throw Bad($"the vectors section has {vecLen} bytes, not {tokens} × {dim} × {width}");
            if (Encoding.ASCII.GetString(file.Bytes(end, Magic.Length)) != Magic) throw Bad($"missing end signature at byte {end}");

            var meta = new XxHash3();
            meta.Append(file.Bytes(dirOff, checked((int)dirLen)));
            Append(meta, file, stageOff, stageLen);
            meta.Append(h[..96]);
            if (meta.GetCurrentHashAsUInt64() != BinaryPrimitives.ReadUInt64LittleEndian(h[96..]))
                throw Bad("the header, directory or centroid checksum does not match (corrupt file)");
            var vectorsHash = new XxHash3();
            Append(vectorsHash, file, vecOff, vecLen);
            if (vectorsHash.GetCurrentHashAsUInt64() != BinaryPrimitives.ReadUInt64LittleEndian(h[104..]))
                throw Bad("the vectors checksum does not match (corrupt file)");

            var at = 0;
            int Int(string what)
            {
                if (dirLen - at < 4) throw Bad($"the directory ends early reading {what} (byte {dirOff + at})");
                var v = BinaryPrimitives.ReadInt32LittleEndian(file.Bytes(dirOff + at, 4));
                at += 4;
                return v;
            }
            var raw = new (string Id, int Tokens, int Codes)[count];
            long sumTokens = 0, sumCodes = 0;
            var ids = new HashSet<string>(StringComparer.Ordinal);
            for (var d = 0; d < count; d++)
            {
                var idLength = Int($"document {d}'s id length");
                if (idLength < 0 || idLength > dirLen - at) throw Bad($"document {d}'s id length {idLength} (byte {dirOff + at - 4})");
                var id = Encoding.UTF8.GetString(file.Bytes(dirOff + at, idLength));
                at += idLength;
                var n = Int($"document '{id}'s token count");
                var codes = Int($"document '{id}'s centroid count");
                if (n <= 0 || n > tokens - sumTokens) throw Bad($"document '{id}' has {n} vectors, more than the file holds");
                if (codes < 0 || codes > n || (centroids == 0 && codes != 0) || (centroids > 0 && codes == 0)) throw Bad($"document '{id}' lists {codes} centroids");
                if (!ids.Add(id)) throw Bad($"document '{id}' appears twice");
                raw[d] = (id, n, codes);
                sumTokens += n;
                sumCodes += codes;
            }
            if (at != dirLen || sumTokens != tokens) throw Bad("the directory does not account for every vector");
            float[]? centroidValues = null;
            var entries = new IndexEntry[count];
            if (centroids > 0)
            {
                if (stageLen != ((long)centroids * dim + sumCodes) * 4) throw Bad($"the stage section has {stageLen} bytes, not what {centroids} centroids and the directory need");
                centroidValues = MemoryMarshal.Cast<byte, float>(file.Bytes(stageOff, checked(centroids * dim * 4))).ToArray();
                var codeAt = stageOff + (long)centroids * dim * 4;
                long offset = 0;
                for (var d = 0; d < count; d++)
                {
                    var codes = MemoryMarshal.Cast<byte, int>(file.Bytes(codeAt, raw[d].Codes * 4)).ToArray();
                    codeAt += raw[d].Codes * 4L;
                    foreach (var c in codes)
                        if ((uint)c >= (uint)centroids) throw Bad($"document '{raw[d].Id}' names centroid {c} of {centroids}");
                    entries[d] = new IndexEntry(raw[d].Id, raw[d].Tokens, offset, codes);
                    offset += (long)raw[d].Tokens * dim;
                }
            }
            else
            {
                if (stageLen != 0) throw Bad("a stage section without centroids");
                long offset = 0;
                for (var d = 0; d < count; d++)
                {
                    entries[d] = new IndexEntry(raw[d].Id, raw[d].Tokens, offset, null);
                    offset += (long)raw[d].Tokens * dim;
                }
            }
            return new Contents(dim, precision, entries, centroidValues, centroids, trained, file, vecOff);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static void Append(XxHash3 hash, MappedFile file, long offset, long length)
    {
        for (long done = 0; done < length;)
        {
            var n = (int)Math.Min(1 << 30, length - done);
            hash.Append(file.Bytes(offset + done, n));
            done += n;
        }
    }
}

/// <summary>A read-only memory-mapped file, read in place through spans.</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private byte* _pointer;

    private MappedFile(MemoryMappedFile map, MemoryMappedViewAccessor view, long length)
    {
        _map = map;
        _view = view;
        Length = length;
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        _pointer = p + view.PointerOffset;
    }

    /// <summary>The file's size in bytes.</summary>
    public long Length { get; }

    /// <summary>Maps <paramref name="path"/> read-only (others may read, rename or delete it meanwhile).</summary>
    public static MappedFile Open(string path, long length)
    {
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        try
        {
            var map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            return new MappedFile(map, map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read), length);
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary><paramref name="count"/> bytes at <paramref name="offset"/> (within the file).</summary>
    public ReadOnlySpan<byte> Bytes(long offset, int count)
    {
        if (_pointer == null) throw new ObjectDisposedException(nameof(MultiVectorIndex));
        if (offset < 0 || count < 0 || offset > Length - count) throw new ArgumentOutOfRangeException(nameof(offset));
        return new ReadOnlySpan<byte>(_pointer + offset, count);
    }

    /// <summary><paramref name="count"/> values of <typeparamref name="T"/> at byte <paramref name="offset"/>.</summary>
    public ReadOnlySpan<T> Values<T>(long offset, int count) where T : unmanaged =>
        MemoryMarshal.Cast<byte, T>(Bytes(offset, checked(count * sizeof(T))));

    /// <inheritdoc />
    public void Dispose()
    {
        if (_pointer == null) return;
        _pointer = null;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
