using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace TokenEmbed.Hub;

/// <summary>
/// Downloads a model repository into the cache layout of <c>huggingface_hub</c>, so that Python and .NET share downloads:
/// <c>models--org--name/blobs/&lt;etag&gt;</c>, <c>snapshots/&lt;commit&gt;/&lt;path&gt;</c> (relative symlinks, a copy where symlinks
/// cannot be made), <c>refs/&lt;revision&gt;</c>. Only the files the library reads are fetched (configs, tokenizer files,
/// safetensors weights, sentence-transformers / PyLate module folders, the image processor config).
/// </summary>
internal static partial class HubClient
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None })
    {
        Timeout = TimeSpan.FromMinutes(30),
    };

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")]
    private static partial Regex RepoIdPattern();

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();

    /// <summary>Whether <paramref name="model"/> reads as a hub repository id (<c>org/name</c>) rather than a path.</summary>
    public static bool LooksLikeRepoId(string model) =>
        RepoIdPattern().IsMatch(model) && !model.Contains("..", StringComparison.Ordinal) && !Path.IsPathRooted(model);

    /// <summary>Whether a repository file is one the library reads.</summary>
    public static bool IsWanted(string path)
    {
        var name = Path.GetFileName(path);
        var top = path.Split('/')[0];
        if (top is "onnx" or "openvino" or "coreml" or "tflite" || name.StartsWith('.')) return false;
        return name.EndsWith(".safetensors", StringComparison.Ordinal) || name.EndsWith(".json", StringComparison.Ordinal)
            || name is "vocab.txt" or "merges.txt" or "spiece.model" or "sentencepiece.bpe.model" or "tokenizer.model";
    }

    /// <summary>The local snapshot folder of <paramref name="repo"/> at <paramref name="revision"/>, downloading what is missing.</summary>
    /// <exception cref="ModelLoadException">The repository, revision or a file does not exist, is gated or private, the network fails, or offline mode lacks a file.</exception>
    public static async Task<string> SnapshotAsync(string repo, string revision, HubSettings settings, IProgress<LoadProgress>? progress, CancellationToken ct,
        Microsoft.Extensions.Logging.ILogger? logger = null)
    {
        logger ??= Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        var repoDir = Path.Combine(settings.CacheDirectory, "models--" + repo.Replace("/", "--", StringComparison.Ordinal));
        if (settings.Offline)
        {
            var cached = Offline(repo, revision, repoDir);
            Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(logger, "Hub offline (HF_HUB_OFFLINE): {Repo}@{Revision} from {Snapshot}", repo, revision, cached);
            return cached;
        }

        var info = await GetJsonAsync(new Uri(settings.Endpoint, $"api/models/{repo}/revision/{Uri.EscapeDataString(revision)}"), repo, revision, settings, ct).ConfigureAwait(false);
        var commit = info.RootElement.TryGetProperty("sha", out var sha) && sha.GetString() is { } s ? s
            : throw new ModelLoadException($"The hub's answer for '{repo}' at '{revision}' has no commit ('sha').");
        var files = info.RootElement.TryGetProperty("siblings", out var sib)
            ? sib.EnumerateArray().Select(e => e.GetProperty("rfilename").GetString()!).ToList()
            : [];
        var unsafeName = files.FirstOrDefault(f => f.Length == 0 || f.StartsWith('/') || f.Contains('\\') || f.Split('/').Any(part => part is "" or "." or ".."));
        if (unsafeName is not null)
            throw new ModelLoadException($"The hub listed a file name that would leave the snapshot folder for '{repo}': '{unsafeName}'.");
        var wanted = files.Where(IsWanted).ToList();
        if (!wanted.Any(f => f.EndsWith(".safetensors", StringComparison.Ordinal)))
            throw new ModelLoadException(files.Any(f => f.EndsWith(".bin", StringComparison.Ordinal) || f.EndsWith(".pt", StringComparison.Ordinal))
                ? $"'{repo}' at '{revision}' has only PyTorch pickle weights (pytorch_model.bin); TokenEmbed loads safetensors only. Convert them (transformers: save_pretrained(..., safe_serialization=True)) or pick a repository with model.safetensors."
                : $"'{repo}' at '{revision}' has no safetensors weights.");
        if (!wanted.Contains("config.json"))
            throw new ModelLoadException($"'{repo}' at '{revision}' has no config.json.");

        var snapshot = Path.Combine(repoDir, "snapshots", commit);
        Microsoft.Extensions.Logging.LoggerExtensions.LogInformation(logger, "Hub: {Repo}@{Revision} is commit {Commit}; {Count} file(s) into {Snapshot}", repo, revision, commit, wanted.Count, snapshot);
        foreach (var file in wanted)
            await FetchAsync(repo, commit, file, repoDir, snapshot, settings, progress, ct).ConfigureAwait(false);
        if (!string.Equals(revision, commit, StringComparison.Ordinal))
        {
            Directory.CreateDirectory(Path.Combine(repoDir, "refs"));
            File.WriteAllText(Path.Combine(repoDir, "refs", revision), commit);
        }
        return snapshot;
    }

    private static string Offline(string repo, string revision, string repoDir)
    {
        var commit = CommitPattern().IsMatch(revision) ? revision
            : File.Exists(Path.Combine(repoDir, "refs", revision)) ? File.ReadAllText(Path.Combine(repoDir, "refs", revision)).Trim()
            : throw new ModelLoadException($"HF_HUB_OFFLINE is set and '{repo}' at revision '{revision}' is not in the cache '{repoDir}' (no refs/{revision}). Download it once online, or unset HF_HUB_OFFLINE.", repoDir);
        var snapshot = Path.Combine(repoDir, "snapshots", commit);
        if (!File.Exists(Path.Combine(snapshot, "config.json")))
            throw new ModelLoadException($"HF_HUB_OFFLINE is set and the cached snapshot '{snapshot}' of '{repo}' has no config.json.", snapshot);
        return snapshot;
    }

    private static async Task FetchAsync(string repo, string commit, string file, string repoDir, string snapshot, HubSettings settings,
        IProgress<LoadProgress>? progress, CancellationToken ct)
    {
        var target = Path.Combine(snapshot, file.Replace('/', Path.DirectorySeparatorChar));
        if (File.Exists(target)) return;
        var url = new Uri(settings.Endpoint, $"{repo}/resolve/{commit}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}");

        // HEAD for the blob's identity: X-Linked-Etag / X-Linked-Size on LFS files, ETag / Content-Length otherwise.
        using var head = await SendAsync(() => new HttpRequestMessage(HttpMethod.Head, url), url, repo, commit, file, settings, ct).ConfigureAwait(false);
        var etag = Header(head, "X-Linked-Etag") ?? head.Headers.ETag?.Tag
            ?? throw new ModelLoadException($"The hub sent no ETag for '{file}' of '{repo}'.");
        etag = etag.Trim().TrimStart('W', '/').Trim('"');
        if (etag.Length == 0 || etag.Contains('/') || etag.Contains('\\') || etag.Contains(".."))
            throw new ModelLoadException($"The hub sent an unusable ETag '{etag}' for '{file}' of '{repo}'.");
        long? size = long.TryParse(Header(head, "X-Linked-Size"), out var ls) ? ls : head.Content.Headers.ContentLength;
        var download = head.Headers.Location is { } loc ? new Uri(url, loc) : url;

        var blobs = Path.Combine(repoDir, "blobs");
        Directory.CreateDirectory(blobs);
        var blob = Path.Combine(blobs, etag);
        if (!File.Exists(blob))
        {
            // One process at a time per blob; a second one waits, then finds the blob done.
            using var gate = await LockAsync(blob + ".lock", ct).ConfigureAwait(false);
            if (!File.Exists(blob)) await DownloadAsync(download, url, blob, size, repo, commit, file, settings, progress, ct).ConfigureAwait(false);
        }
        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        Link(target, blob);
    }

    private static async Task DownloadAsync(Uri source, Uri original, string blob, long? size, string repo, string commit, string file,
        HubSettings settings, IProgress<LoadProgress>? progress, CancellationToken ct)
    {
        var partial = blob + ".incomplete";
        for (var attempt = 1; ; attempt++)
        {
            var have = File.Exists(partial) ? new FileInfo(partial).Length : 0;
            try
            {
                using var response = await SendAsync(() =>
                {
                    var req = new HttpRequestMessage(HttpMethod.Get, source);
                    if (have > 0) req.Headers.Range = new RangeHeaderValue(have, null);
                    return req;
                }, original, repo, commit, file, settings, ct).ConfigureAwait(false);
                var append = have > 0 && response.StatusCode == HttpStatusCode.PartialContent;
                await using (var output = new FileStream(partial, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None))
                await using (var input = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
                {
                    var buffer = new byte[1 << 16];
                    int n;
                    while ((n = await input.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                    {
                        await output.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                        progress?.Report(new LoadProgress("download", file, output.Length, size));
                    }
                }
                var got = new FileInfo(partial).Length;
                if (size is { } expected && got != expected)
                    throw new IOException($"'{file}' of '{repo}': {got} of {expected} bytes arrived.");
                File.Move(partial, blob, overwrite: true);
                return;
            }
            catch (Exception e) when (e is IOException or HttpRequestException && attempt < settings.MaxAttempts && !ct.IsCancellationRequested)
            {
                await Task.Delay(settings.RetryDelay * Math.Pow(2, attempt - 1), ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or HttpRequestException)
            {
                throw new ModelLoadException($"Downloading '{file}' of '{repo}' failed after {attempt} attempt(s): {e.Message}", blob, null, e);
            }
        }
    }

    /// <summary>
    /// Sends with retries on 429, 5xx and timeouts; follows redirects itself, dropping the bearer token when the host changes
    /// (the storage host must not see it); maps the hub's <c>X-Error-Code</c> to a <see cref="ModelLoadException"/>.
    /// </summary>
    private static async Task<HttpResponseMessage> SendAsync(Func<HttpRequestMessage> make, Uri original, string repo, string revision, string? file,
        HubSettings settings, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            HttpResponseMessage? response = null;
            try
            {
                var request = make();
                for (var hops = 0; ; hops++)
                {
                    if (settings.Token is { } token && request.RequestUri!.Host == settings.Endpoint.Host && request.RequestUri.Port == settings.Endpoint.Port)
                        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                    var code = (int)response.StatusCode;
                    if (code is >= 300 and < 400 && response.Headers.Location is { } location && hops < 10)
                    {
                        // A HEAD on an LFS file answers with the redirect itself: its X-Linked headers are what we need.
                        if (request.Method == HttpMethod.Head && Header(response, "X-Linked-Etag") is not null) return response;
                        var next = new Uri(request.RequestUri!, location);
                        var method = request.Method;
                        var range = request.Headers.Range;
                        response.Dispose();
                        request = new HttpRequestMessage(method, next);
                        request.Headers.Range = range;
                        continue;
                    }
                    break;
                }
                if (response.IsSuccessStatusCode) return response;
                var status = (int)response.StatusCode;
                if ((status == 429 || status >= 500) && attempt < settings.MaxAttempts)
                {
                    var wait = response.Headers.RetryAfter?.Delta is { } d && d < TimeSpan.FromSeconds(60) ? d : settings.RetryDelay * Math.Pow(2, attempt - 1);
                    response.Dispose();
                    await Task.Delay(wait, ct).ConfigureAwait(false);
                    continue;
                }
                throw Failure(response, repo, revision, file);
            }
            catch (TaskCanceledException e) when (!ct.IsCancellationRequested && attempt < settings.MaxAttempts)
            {
                response?.Dispose();
                _ = e;   // a timeout: retry
                await Task.Delay(settings.RetryDelay * Math.Pow(2, attempt - 1), ct).ConfigureAwait(false);
            }
            catch (HttpRequestException e) when (attempt < settings.MaxAttempts)
            {
                response?.Dispose();
                _ = e;
                await Task.Delay(settings.RetryDelay * Math.Pow(2, attempt - 1), ct).ConfigureAwait(false);
            }
            catch (HttpRequestException e)
            {
                throw new ModelLoadException($"The hub at '{settings.Endpoint}' could not be reached for '{repo}' ({e.Message}). Check the network, HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use the cache.", null, null, e);
            }
        }
    }

    private static ModelLoadException Failure(HttpResponseMessage response, string repo, string revision, string? file)
    {
        var code = Header(response, "X-Error-Code");
        var status = (int)response.StatusCode;
        var what = file is null ? $"'{repo}'" : $"'{file}' of '{repo}'";
        var message = code switch
        {
            "RepoNotFound" => $"The repository '{repo}' was not found on the hub (HTTP {status}): check the name, or log in (HF_TOKEN) if it is private.",
            "GatedRepo" => $"The repository '{repo}' is gated (HTTP {status}): accept its licence on the hub with your account and set HF_TOKEN to a token of that account.",
            "RevisionNotFound" => $"The revision '{revision}' of '{repo}' was not found (HTTP {status}): check LlmOptions.Revision (a branch, tag or commit).",
            "EntryNotFound" => $"{what} was not found at revision '{revision}' (HTTP {status}).",
            _ when status == 401 => $"The hub refused {what} (HTTP 401): the repository is private or gated; set HF_TOKEN to a token with access.",
            _ => $"The hub answered HTTP {status} for {what}{(code is null ? "" : $" ({code})")}.",
        };
        response.Dispose();
        return new ModelLoadException(message);
    }

    private static async Task<JsonDocument> GetJsonAsync(Uri url, string repo, string revision, HubSettings settings, CancellationToken ct)
    {
        using var response = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, url), url, repo, revision, null, settings, ct).ConfigureAwait(false);
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        try
        {
            return await JsonDocument.ParseAsync(body, default, ct).ConfigureAwait(false);
        }
        catch (JsonException e)
        {
            throw new ModelLoadException($"The hub's answer for '{repo}' is not JSON: {e.Message}", null, null, e);
        }
    }

    private static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : r.Content.Headers.TryGetValues(name, out var c) ? c.FirstOrDefault() : null;

    private static async Task<FileStream> LockAsync(string path, CancellationToken ct)
    {
        for (var i = 0; ; i++)
        {
            try
            {
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, 1, FileOptions.DeleteOnClose);
            }
            catch (IOException) when (i < 36000)
            {
                await Task.Delay(100, ct).ConfigureAwait(false);   // another process holds it
            }
        }
    }

    /// <summary>snapshots/…/file → a relative symlink to the blob, as huggingface_hub makes it; a copy where links cannot be made.</summary>
    private static void Link(string target, string blob)
    {
        var relative = Path.GetRelativePath(Path.GetDirectoryName(target)!, blob);
        try
        {
            File.CreateSymbolicLink(target, relative);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            if (!File.Exists(target)) File.Copy(blob, target);
        }
    }
}
