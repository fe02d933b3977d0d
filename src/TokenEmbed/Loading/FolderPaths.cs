namespace TokenEmbed.Loading;

/// <summary>
/// Every file a model folder names must lie inside the folder, also after symbolic links are followed, so that a folder
/// cannot make the library read files elsewhere. The one layout allowed to point outside is the Hugging Face cache's: a
/// snapshot folder (<c>models--org--name/snapshots/&lt;commit&gt;</c>) whose files are links into the repository's
/// <c>blobs/</c> folder.
/// </summary>
internal static class FolderPaths
{
    /// <summary>
    /// <paramref name="relative"/> under <paramref name="folder"/>, checked: a path that leaves the folder (<c>..</c>, an
    /// absolute path, or a link whose target is outside) is a <see cref="ModelLoadException"/> naming <paramref name="namedBy"/>.
    /// A path that does not exist is returned unchecked (the caller reports it missing).
    /// </summary>
    public static string Inside(string folder, string relative, string? namedBy = null)
    {
        var root = Path.GetFullPath(folder);
        string full;
        try
        {
            full = Path.GetFullPath(Path.Combine(root, relative));
        }
        catch (Exception e) when (e is ArgumentException or NotSupportedException or PathTooLongException)
        {
            throw new ModelLoadException($"'{relative}'{Source(namedBy)} is not a valid path: {e.Message}", namedBy ?? folder, null, e);
        }
        if (Path.IsPathRooted(relative) || !IsUnder(full, root))
            throw new ModelLoadException($"'{relative}'{Source(namedBy)} lies outside the model folder '{root}'.", namedBy ?? full);
        if (!File.Exists(full) && !Directory.Exists(full)) return full;

        var real = RealPath(full);
        var realRoot = RealPath(root);
        if (IsUnder(real, realRoot) || IsHubBlob(real, realRoot)) return full;
        throw new ModelLoadException(
            $"'{relative}'{Source(namedBy)} is a link to '{real}', outside the model folder '{root}'.", namedBy ?? full);
    }

    private static string Source(string? namedBy) => namedBy == null ? "" : $" (named by '{namedBy}')";

    private static bool IsUnder(string path, string root)
    {
        var prefix = Path.TrimEndingDirectorySeparator(root) + Path.DirectorySeparatorChar;
        return path == Path.TrimEndingDirectorySeparator(root) || path.StartsWith(prefix, StringComparison.Ordinal);
    }

    /// <summary>The Hugging Face cache: the folder is <c>…/snapshots/&lt;commit&gt;</c> and the file is in <c>…/blobs/</c> beside it.</summary>
    private static bool IsHubBlob(string real, string realRoot)
    {
        var snapshots = Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(realRoot));
        if (snapshots == null || Path.GetFileName(snapshots) != "snapshots") return false;
        var repo = Path.GetDirectoryName(snapshots);
        return repo != null && IsUnder(real, Path.Combine(repo, "blobs"));
    }

    /// <summary>The path with every symbolic link along it resolved (realpath), for paths that exist.</summary>
    private static string RealPath(string full)
    {
        var root = Path.GetPathRoot(full)!;
        var current = root;
        foreach (var part in full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            var next = Path.Combine(current, part);
            for (var hops = 0; hops < 40; hops++)
            {
                FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
                if (info.LinkTarget is not { } target) break;
                next = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(next) ?? root, target));
                if (hops == 39) throw new ModelLoadException($"'{full}': too many levels of symbolic links.", full);
            }
            current = next;
        }
        return current;
    }
}
