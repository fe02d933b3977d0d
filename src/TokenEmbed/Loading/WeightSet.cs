using System.Text.Json;

namespace TokenEmbed.Loading;

/// <summary>
/// A named set of tensors from one or more safetensors files: <c>model.safetensors</c>, or the shards
/// named by <c>model.safetensors.index.json</c>, plus extra files added under a key prefix
/// (e.g. <c>1_Dense/model.safetensors</c> under the prefix <c>"1_Dense."</c>).
/// </summary>
/// <remarks>
/// Keys are unique across the set: a name provided by two files is an error. <see cref="Get"/> returns the
/// file's own <see cref="SafeTensorInfo"/>, whose <see cref="SafeTensorInfo.Name"/> is the name inside that
/// file (without the key prefix). Disposing the set unmaps every file.
/// </remarks>
internal sealed class WeightSet : IDisposable
{
    /// <summary>The single-file checkpoint name.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>The sharded checkpoint index name.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>The largest index file accepted.</summary>
    private const long MaxIndexLength = 100_000_000;

    private readonly List<SafeTensorsFile> _files = [];
    private readonly Dictionary<string, (SafeTensorsFile File, SafeTensorInfo Info)> _entries = new(StringComparer.Ordinal);
    private bool _disposed;

    /// <summary>Creates an empty set; add files with <see cref="AddFile"/>.</summary>
    public WeightSet()
    {
    }

    /// <summary>The tensor keys, in the order they were added.</summary>
    public IReadOnlyCollection<string> Names => _entries.Keys;

    /// <summary>The files of the set, in the order they were opened.</summary>
    public IReadOnlyList<SafeTensorsFile> Files => _files;

    /// <summary>
    /// Opens the checkpoint in <paramref name="folder"/>: the shards of <c>model.safetensors.index.json</c> when
    /// that file exists (it wins over a <c>model.safetensors</c> beside it), else <c>model.safetensors</c>.
    /// Other <c>*.safetensors</c> files in the folder are ignored.
    /// </summary>
    /// <exception cref="ModelLoadException">No weights, a malformed file, or an inconsistent index.</exception>
    public static WeightSet OpenCheckpoint(string folder)
    {
        ArgumentNullException.ThrowIfNull(folder);
        var full = SafeTensorsFile.FullPath(folder, "Invalid model folder");
        if (!Directory.Exists(full))
            throw new ModelLoadException($"Model folder '{full}' does not exist.", full);

        var index = FolderPaths.Inside(full, IndexFileName);
        var single = FolderPaths.Inside(full, SingleFileName);
        var set = new WeightSet();
        try
        {
            if (File.Exists(index))
                set.LoadIndex(full, index);
            else if (File.Exists(single))
                set.AddFile(single, "");
            else
                throw new ModelLoadException(
                    $"No weights found in '{full}': expected '{SingleFileName}' or '{IndexFileName}'.", full);
            return set;
        }
        catch
        {
            set.Dispose();
            throw;
        }
    }

    /// <summary>Adds every tensor of a safetensors file under <paramref name="keyPrefix"/> + its name.</summary>
    /// <exception cref="ModelLoadException">The file is malformed, or one of its keys is already in the set.</exception>
    public void AddFile(string path, string keyPrefix)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(path);
        ArgumentNullException.ThrowIfNull(keyPrefix);
        var file = SafeTensorsFile.Open(path);
        try
        {
            foreach (var name in file.Tensors.Keys)
            {
                var key = keyPrefix + name;
                if (_entries.TryGetValue(key, out var existing))
                    throw new ModelLoadException(
                        $"Tensor '{key}' from '{file.FilePath}' is already provided by '{existing.File.FilePath}'.", file.FilePath, key);
            }
        }
        catch
        {
            file.Dispose();
            throw;
        }
        _files.Add(file);
        foreach (var (name, info) in file.Tensors)
            _entries.Add(keyPrefix + name, (file, info));
    }

    /// <summary>Whether the set holds a tensor under <paramref name="name"/>.</summary>
    public bool Contains(string name) => _entries.ContainsKey(name);

    /// <summary>The tensor stored under <paramref name="name"/>.</summary>
    /// <exception cref="ModelLoadException">No such tensor.</exception>
    public SafeTensorInfo Get(string name) => Find(name).Info;

    /// <summary>The file that holds the tensor stored under <paramref name="name"/>.</summary>
    /// <exception cref="ModelLoadException">No such tensor.</exception>
    public SafeTensorsFile FileOf(string name) => Find(name).File;

    /// <summary>Reads a floating-point tensor (F32, F16, BF16, F64) as a new float32 array.</summary>
    /// <exception cref="ModelLoadException">No such tensor, or not a floating-point dtype.</exception>
    public float[] ReadAsFloat32(string name)
    {
        var (file, info) = Find(name);
        return file.ReadAsFloat32(info);
    }

    /// <summary>Unmaps every file of the set.</summary>
    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var file in _files) file.Dispose();
        _files.Clear();
        _entries.Clear();
    }

    private (SafeTensorsFile File, SafeTensorInfo Info) Find(string name)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(name);
        if (_entries.TryGetValue(name, out var entry)) return entry;
        throw new ModelLoadException($"Tensor '{name}' not found in the weights ({DescribeFiles()}).", null, name);
    }

    private string DescribeFiles()
    {
        if (_files.Count == 0) return "no weight files loaded";
        var shown = string.Join(", ", _files.Take(3).Select(f => $"'{f.FilePath}'"));
        return _files.Count > 3 ? $"{_files.Count} files: {shown}, …" : shown;
    }

    private void LoadIndex(string folder, string indexPath)
    {
        static ModelLoadException Bad(string indexPath, string problem, string? tensor = null, Exception? inner = null) =>
            JsonFile.Error(indexPath, "invalid checkpoint index: " + problem, tensor, inner);

        // tensor name → shard file name as written in the index, in index order
        var weightMap = new List<(string Tensor, string Shard)>();
        using (var doc = JsonFile.ReadDocument(indexPath, MaxIndexLength))
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw Bad(indexPath, $"the index must be a JSON object, found {root.ValueKind}.");
            if (!root.TryGetProperty("weight_map", out var map))
                throw Bad(indexPath, "'weight_map' is missing.");
            if (map.ValueKind != JsonValueKind.Object)
                throw Bad(indexPath, $"'weight_map' must be an object of tensor name → shard file, found {map.ValueKind}.");
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var entry in map.EnumerateObject())
            {
                if (!seen.Add(entry.Name))
                    throw Bad(indexPath, $"tensor '{entry.Name}' appears twice in 'weight_map'.", entry.Name);
                if (entry.Value.ValueKind != JsonValueKind.String || string.IsNullOrEmpty(entry.Value.GetString()))
                    throw Bad(indexPath, $"the shard of tensor '{entry.Name}' must be a file name, found {entry.Value.GetRawText()}.", entry.Name);
                weightMap.Add((entry.Name, entry.Value.GetString()!));
            }
        }
        if (weightMap.Count == 0)
            throw Bad(indexPath, "'weight_map' is empty.");

        // Resolve and check every shard before opening any.
        var folderPrefix = Path.TrimEndingDirectorySeparator(folder) + Path.DirectorySeparatorChar;
        var shardPaths = new Dictionary<string, string>(StringComparer.Ordinal); // name in index → full path
        foreach (var (tensor, shard) in weightMap)
        {
            if (shardPaths.ContainsKey(shard)) continue;
            string full;
            try
            {
                full = Path.GetFullPath(Path.Combine(folder, shard));
            }
            catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
            {
                throw Bad(indexPath, $"shard '{shard}' of tensor '{tensor}' is not a valid file name.", tensor, e);
            }
            if (Path.IsPathRooted(shard) || !full.StartsWith(folderPrefix, StringComparison.Ordinal))
                throw Bad(indexPath, $"shard '{shard}' of tensor '{tensor}' lies outside the model folder.", tensor);
            FolderPaths.Inside(folder, shard, indexPath);   // links included
            if (!File.Exists(full))
                throw new ModelLoadException(
                    $"Shard '{shard}' named by checkpoint index '{indexPath}' (for tensor '{tensor}') not found at '{full}'.", full, tensor);
            shardPaths.Add(shard, full);
        }

        var shards = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        foreach (var (shard, full) in shardPaths)
        {
            // A shard may be named twice in different spellings ("a.safetensors", "./a.safetensors"): open it once.
            var opened = _files.FirstOrDefault(f => string.Equals(f.FilePath, full, StringComparison.Ordinal));
            if (opened == null)
            {
                opened = SafeTensorsFile.Open(full);
                _files.Add(opened);
            }
            shards[shard] = opened;
        }

        // A tensor must live in exactly one shard file.
        var owner = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        foreach (var file in _files)
        {
            foreach (var name in file.Tensors.Keys)
            {
                if (owner.TryGetValue(name, out var other))
                    throw new ModelLoadException(
                        $"Tensor '{name}' appears in two shards of '{indexPath}': '{other.FilePath}' and '{file.FilePath}'.", file.FilePath, name);
                owner.Add(name, file);
            }
        }

        var listed = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (tensor, shard) in weightMap)
        {
            var file = shards[shard];
            if (!file.Tensors.TryGetValue(tensor, out var info))
                throw new ModelLoadException(
                    $"Tensor '{tensor}' is mapped to shard '{shard}' by '{indexPath}', but '{file.FilePath}' does not contain it.", file.FilePath, tensor);
            listed.Add(tensor);
            _entries.Add(tensor, (file, info));
        }

        foreach (var (name, file) in owner)
        {
            if (!listed.Contains(name))
                throw new ModelLoadException(
                    $"Tensor '{name}' is in shard '{file.FilePath}' but not listed in the 'weight_map' of '{indexPath}'.", file.FilePath, name);
        }
    }
}
