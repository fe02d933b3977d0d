using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace TokenEmbed.Loading;

/// <summary>
/// A safetensors file, memory-mapped read-only, with its header validated strictly on open.
/// </summary>
/// <remarks>
/// Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
/// (<c>{"name": {"dtype", "shape", "data_offsets": [begin, end]}, …, "__metadata__": {str: str}}</c>),
/// then the data buffer; offsets are relative to the data buffer. Every problem with the file is a
/// <see cref="ModelLoadException"/> naming the file (and the tensor, when it concerns one). As strict as
/// the reference reader (the <c>safetensors</c> crate's <c>validate</c>): the tensors' byte ranges, sorted, tile
/// the data buffer from 0 to its end with no gap and no overlap, so a header length off by a few bytes, which
/// shifts every tensor, is refused. Only regular files are opened. Tensor data is not read on open: pages
/// are touched only when a tensor is read.
/// </remarks>
internal sealed unsafe class SafeTensorsFile : IDisposable
{
    /// <summary>The largest header accepted (the Python/Rust library's limit).</summary>
    public const long MaxHeaderLength = 100_000_000;

    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly Dictionary<string, SafeTensorInfo> _tensors;
    private readonly Dictionary<string, string> _metadata;
    private readonly long _fileLength;
    private readonly long _dataStart;
    private byte* _base;
    private bool _disposed;

    private SafeTensorsFile(string filePath, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer,
        long fileLength, long dataStart, Dictionary<string, SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        FilePath = filePath;
        _map = map;
        _view = view;
        _base = basePointer;
        _fileLength = fileLength;
        _dataStart = dataStart;
        _tensors = tensors;
        _metadata = metadata;
    }

    /// <summary>The full path of the file.</summary>
    public string FilePath { get; }

    /// <summary>The tensors by name, in header order.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors => _tensors;

    /// <summary>The <c>__metadata__</c> entries (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _metadata;

    /// <summary>
    /// <see cref="Path.GetFullPath(string)"/>, with an invalid path reported as a <see cref="ModelLoadException"/>
    /// ("<paramref name="what"/> '<paramref name="path"/>': reason").
    /// </summary>
    internal static string FullPath(string path, string what)
    {
        try
        {
            return Path.GetFullPath(path);
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new ModelLoadException($"{what} '{path}': {e.Message}", path, null, e);
        }
    }

    /// <summary>Opens, maps and validates a safetensors file.</summary>
    /// <exception cref="ModelLoadException">The file is missing, unreadable or malformed.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var full = FullPath(path, "Cannot open safetensors file");

        if (!BitConverter.IsLittleEndian)
            throw new ModelLoadException($"Cannot open safetensors file '{full}': big-endian platforms are not supported.", full);

        // A FIFO, a device or a directory would block or fail on open: only non-empty regular files are opened
        // (such special files report a length of 0, and a safetensors file has at least its 8-byte prefix).
        try
        {
            var info = new FileInfo(full);
            if (info.Exists && (info.Attributes & FileAttributes.Directory) == 0 && info.Length < 8)
                throw Invalid(full, $"the file is {info.Length} bytes long, shorter than the 8-byte header length prefix (truncated, or not a regular file).");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException($"Cannot open safetensors file '{full}': {e.Message}", full, null, e);
        }
        if (Directory.Exists(full))
            throw Invalid(full, "it is a directory, not a file.");

        FileStream stream;
        try
        {
            stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.None);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelLoadException($"Safetensors file '{full}' not found.", full, null, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or NotSupportedException or ArgumentException)
        {
            throw new ModelLoadException($"Cannot open safetensors file '{full}': {e.Message}", full, null, e);
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* basePointer = null;
        try
        {
            long fileLength;
            try
            {
                fileLength = stream.Length;
            }
            catch (Exception e) when (e is IOException or NotSupportedException)
            {
                throw Invalid(full, $"cannot determine its length: {e.Message}", null, e);
            }

            if (fileLength < 8)
                throw Invalid(full, $"the file is {fileLength} bytes long, shorter than the 8-byte header length prefix (truncated?).");

            try
            {
                map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
                stream = null!; // owned by the map now
                view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                view.SafeMemoryMappedViewHandle.AcquirePointer(ref basePointer);
                basePointer += view.PointerOffset;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                throw Invalid(full, $"cannot memory-map it: {e.Message}", null, e);
            }

            ulong headerLength = *(ulong*)basePointer; // little-endian checked above; unaligned read is fine on x64/arm64
            if (headerLength > MaxHeaderLength)
                throw Invalid(full, $"the header length {headerLength} exceeds the limit of {MaxHeaderLength} bytes (not a safetensors file, or corrupt).");
            if (8 + (long)headerLength > fileLength)
                throw Invalid(full, $"the header length {headerLength} extends beyond the end of the {fileLength}-byte file (truncated?).");

            long dataStart = 8 + (long)headerLength;
            var headerBytes = new ReadOnlySpan<byte>(basePointer + 8, (int)headerLength).ToArray();
            var (tensors, metadata) = ParseHeader(full, headerBytes, dataStart, fileLength - dataStart);

            var file = new SafeTensorsFile(full, map, view, basePointer, fileLength, dataStart, tensors, metadata);
            basePointer = null;
            view = null;
            map = null;
            return file;
        }
        finally
        {
            if (basePointer != null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            stream?.Dispose();
        }
    }

    /// <summary>A pointer to the first byte of <paramref name="info"/>'s data, valid until <see cref="Dispose"/>.</summary>
    /// <exception cref="ArgumentException"><paramref name="info"/> does not describe a range of this file.</exception>
    public byte* GetPointer(SafeTensorInfo info)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(info);
        if (!string.Equals(info.FilePath, FilePath, StringComparison.Ordinal)
            || info.ByteLength < 0 || info.DataOffset < _dataStart || info.DataOffset > _fileLength - info.ByteLength)
            throw new ArgumentException($"Tensor '{info.Name}' of '{info.FilePath}' does not belong to '{FilePath}'.", nameof(info));
        return _base + info.DataOffset;
    }

    /// <summary>The raw little-endian bytes of a tensor, valid until <see cref="Dispose"/>.</summary>
    /// <exception cref="ModelLoadException">The tensor is larger than <see cref="int.MaxValue"/> bytes.</exception>
    public ReadOnlySpan<byte> GetBytes(SafeTensorInfo info)
    {
        var p = GetPointer(info);
        if (info.ByteLength > int.MaxValue)
            throw new ModelLoadException(
                $"Tensor '{info.Name}' in '{FilePath}' is {info.ByteLength} bytes, too large for a span; use GetPointer.", FilePath, info.Name);
        return new ReadOnlySpan<byte>(p, (int)info.ByteLength);
    }

    /// <summary>Reads a floating-point tensor (F32, F16, BF16 or F64) as a new float32 array.</summary>
    /// <exception cref="ModelLoadException">No such tensor, an integer dtype, or too many elements for an array.</exception>
    public float[] ReadAsFloat32(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_tensors.TryGetValue(name, out var info))
            throw new ModelLoadException($"Tensor '{name}' not found in '{FilePath}'.", FilePath, name);
        return ReadAsFloat32(info);
    }

    /// <summary>Reads a floating-point tensor of this file as a new float32 array.</summary>
    internal float[] ReadAsFloat32(SafeTensorInfo info)
    {
        var p = GetPointer(info);
        if (!info.DType.IsFloatingPoint())
            throw new ModelLoadException(
                $"Tensor '{info.Name}' in '{FilePath}' has dtype {info.DType.HeaderName()}, which cannot be read as float32.", FilePath, info.Name);
        long count = info.ByteLength / info.DType.ElementSize();
        if (count > Array.MaxLength)
            throw new ModelLoadException(
                $"Tensor '{info.Name}' in '{FilePath}' has {count} elements, more than a .NET array can hold.", FilePath, info.Name);
        int n = (int)count;
        var result = GC.AllocateUninitializedArray<float>(n);
        switch (info.DType)
        {
            case SafeTensorDType.F32:
                new ReadOnlySpan<float>(p, n).CopyTo(result);
                break;
            case SafeTensorDType.F16:
                SafeTensorConvert.F16ToF32(new ReadOnlySpan<ushort>(p, n), result);
                break;
            case SafeTensorDType.BF16:
                SafeTensorConvert.BF16ToF32(new ReadOnlySpan<ushort>(p, n), result);
                break;
            case SafeTensorDType.F64:
                SafeTensorConvert.F64ToF32(new ReadOnlySpan<double>(p, n), result);
                break;
        }
        return result;
    }

    /// <summary>Unmaps the file; pointers and spans obtained from it become invalid.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_base != null)
        {
            _base = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        _view.Dispose();
        _map.Dispose();
    }

    /// <inheritdoc/>
    public override string ToString() => $"{FilePath} ({_tensors.Count} tensors)";

    private static ModelLoadException Invalid(string file, string problem, string? tensor = null, Exception? inner = null) =>
        new(tensor == null
                ? $"Invalid safetensors file '{file}': {problem}"
                : $"Invalid safetensors file '{file}': tensor '{tensor}': {problem}",
            file, tensor, inner);

    private static (Dictionary<string, SafeTensorInfo> Tensors, Dictionary<string, string> Metadata) ParseHeader(
        string file, byte[] header, long dataStart, long dataLength)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(header, new JsonDocumentOptions { AllowTrailingCommas = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            throw Invalid(file, $"the header is not valid JSON: {e.Message}", null, e);
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Invalid(file, $"the header must be a JSON object, found {root.ValueKind}.");

            var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
            var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            try
            {
                foreach (var property in root.EnumerateObject())
                {
                    var name = property.Name;
                    if (!seen.Add(name))
                        throw Invalid(file, name == "__metadata__" ? "'__metadata__' appears twice in the header." : "the name appears twice in the header.",
                            name == "__metadata__" ? null : name);
                    if (name == "__metadata__")
                        ParseMetadata(file, property.Value, metadata);
                    else
                        tensors.Add(name, ParseTensor(file, name, property.Value, dataStart, dataLength));
                }
            }
            catch (InvalidOperationException e)
            {
                // e.g. invalid UTF-8 inside a string
                throw Invalid(file, $"the header is not valid JSON: {e.Message}", null, e);
            }

            CheckContiguous(file, tensors.Values, dataStart, dataLength);
            return (tensors, metadata);
        }
    }

    private static void ParseMetadata(string file, JsonElement value, Dictionary<string, string> metadata)
    {
        if (value.ValueKind == JsonValueKind.Null) return;
        if (value.ValueKind != JsonValueKind.Object)
            throw Invalid(file, $"'__metadata__' must be an object of strings, found {value.ValueKind}.");
        foreach (var entry in value.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
                throw Invalid(file, $"'__metadata__' entry '{entry.Name}' must be a string, found {entry.Value.ValueKind}.");
            if (!metadata.TryAdd(entry.Name, entry.Value.GetString()!))
                throw Invalid(file, $"'__metadata__' entry '{entry.Name}' appears twice.");
        }
    }

    private static SafeTensorInfo ParseTensor(string file, string name, JsonElement value, long dataStart, long dataLength)
    {
        if (value.ValueKind != JsonValueKind.Object)
            throw Invalid(file, $"the entry must be an object with dtype, shape and data_offsets, found {value.ValueKind}.", name);

        if (!value.TryGetProperty("dtype", out var dtypeElement))
            throw Invalid(file, "'dtype' is missing.", name);
        if (dtypeElement.ValueKind != JsonValueKind.String)
            throw Invalid(file, $"'dtype' must be a string, found {dtypeElement.ValueKind}.", name);
        var dtypeText = dtypeElement.GetString();
        if (!SafeTensorDTypes.TryParse(dtypeText, out var dtype))
            throw Invalid(file, $"unsupported dtype '{dtypeText}' (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL).", name);

        if (!value.TryGetProperty("shape", out var shapeElement))
            throw Invalid(file, "'shape' is missing.", name);
        if (shapeElement.ValueKind != JsonValueKind.Array)
            throw Invalid(file, $"'shape' must be an array of non-negative integers, found {shapeElement.ValueKind}.", name);
        var shape = new long[shapeElement.GetArrayLength()];
        int k = 0;
        foreach (var d in shapeElement.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim))
                throw Invalid(file, $"'shape' must be an array of non-negative integers, found element {d.GetRawText()}.", name);
            if (dim < 0)
                throw Invalid(file, $"'shape' has a negative dimension {dim}.", name);
            shape[k++] = dim;
        }

        if (!value.TryGetProperty("data_offsets", out var offsetsElement))
            throw Invalid(file, "'data_offsets' is missing.", name);
        if (offsetsElement.ValueKind != JsonValueKind.Array || offsetsElement.GetArrayLength() != 2)
            throw Invalid(file, $"'data_offsets' must be an array of two non-negative integers [begin, end], found {Truncate(offsetsElement.GetRawText())}.", name);
        var begin = ReadOffset(file, name, offsetsElement[0]);
        var end = ReadOffset(file, name, offsetsElement[1]);
        if (begin > end)
            throw Invalid(file, $"data_offsets [{begin}, {end}]: begin is after end.", name);
        if (end > dataLength)
            throw Invalid(file, $"data_offsets [{begin}, {end}] extend beyond the data buffer of {dataLength} bytes (truncated file?).", name);

        long expected;
        try
        {
            long count = 1;
            foreach (var dim in shape) count = checked(count * dim);
            expected = checked(count * dtype.ElementSize());
        }
        catch (OverflowException e)
        {
            throw Invalid(file, $"shape [{string.Join(", ", shape)}] has too many elements.", name, e);
        }
        if (expected != end - begin)
            throw Invalid(file,
                $"shape [{string.Join(", ", shape)}] of dtype {dtype.HeaderName()} needs {expected} bytes, but data_offsets [{begin}, {end}] hold {end - begin}.",
                name);

        return new SafeTensorInfo(name, dtype, shape, dataStart + begin, end - begin, file);
    }

    private static long ReadOffset(string file, string name, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt64(out var v) || v < 0)
            throw Invalid(file, $"'data_offsets' must hold non-negative integers, found {Truncate(e.GetRawText())}.", name);
        return v;
    }

    /// <summary>
    /// The tensors' ranges, sorted by offset, must follow each other from 0 with no gap or overlap and end exactly at the
    /// end of the data buffer (the reference reader's rule; empty tensors sit where the previous one ends).
    /// </summary>
    private static void CheckContiguous(string file, IEnumerable<SafeTensorInfo> tensors, long dataStart, long dataLength)
    {
        var ranges = tensors.OrderBy(t => t.DataOffset).ThenBy(t => t.ByteLength).ToArray();
        long expected = 0;
        SafeTensorInfo? previous = null;
        foreach (var current in ranges)
        {
            var begin = current.DataOffset - dataStart;
            if (begin < expected)
                throw Invalid(file,
                    $"its bytes [{begin}, {begin + current.ByteLength}) overlap those of tensor '{previous!.Name}' " +
                    $"[{previous.DataOffset - dataStart}, {previous.DataOffset - dataStart + previous.ByteLength}).",
                    current.Name);
            if (begin > expected)
                throw Invalid(file,
                    $"its bytes start at {begin}, but the previous tensor{(previous == null ? "s end" : $" '{previous.Name}' ends")} at {expected}: " +
                    "the data buffer has a gap (a header length off by some bytes shifts every tensor).", current.Name);
            expected = begin + current.ByteLength;
            previous = current;
        }
        if (expected != dataLength)
            throw Invalid(file,
                $"the tensors end at byte {expected} of the data buffer, but it holds {dataLength} bytes " +
                "(a wrong header length, or trailing bytes the header does not describe).");
    }

    private static string Truncate(string text) => text.Length <= 80 ? text : text[..80] + "…";
}
