using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using NUnit.Framework;
using TokenEmbed.Tests.Support;

namespace TokenEmbed.Tests.Hub;

/// <summary>
/// Hub downloads against a fake hub on the loopback interface (two HttpListeners: the hub, and a "storage" host on another
/// port that LFS files redirect to), with the huggingface_hub headers; no test reaches the internet.
/// </summary>
[NonParallelizable]
public sealed class HubDownloadTests
{
    private const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private static readonly string[] EnvNames = ["HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_HOME", "HUGGING_FACE_HUB_TOKEN"];

    private readonly Dictionary<string, string?> _savedEnv = new();
    private FakeHub _hub = null!;
    private string _cache = null!;

    [SetUp]
    public void Start()
    {
        foreach (var n in EnvNames) _savedEnv[n] = Environment.GetEnvironmentVariable(n);
        foreach (var n in EnvNames) Environment.SetEnvironmentVariable(n, null);
        _cache = Path.Combine(Path.GetTempPath(), "tokenembed-hub-" + Guid.NewGuid().ToString("N"));
        _hub = new FakeHub(TestPaths.Fixture("goldens", "bert"));
        Environment.SetEnvironmentVariable("HF_ENDPOINT", _hub.HubUrl);
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", _cache);
        Environment.SetEnvironmentVariable("HF_TOKEN", "secret-token");
    }

    [TearDown]
    public void Stop()
    {
        _hub.Dispose();
        foreach (var (n, v) in _savedEnv) Environment.SetEnvironmentVariable(n, v);
        try { Directory.Delete(_cache, true); } catch (IOException) { }
    }

    private static float[] EncodeIds(Llm llm) =>
        llm.Encode(Prompt.FromTokenIds([2, 17, 33, 5]), PoolingTask.TokenEmbed)[0].Outputs.Data;

    [Test]
    public async Task DownloadsIntoTheHuggingFaceCacheLayoutAndLoadsLikeTheLocalFolder()
    {
        var reports = new ConcurrentQueue<LoadProgress>();
        using var hubLlm = await Llm.LoadAsync("org/tiny", new LlmOptions { Device = "cpu" }, new SyncProgress(reports.Enqueue));
        using var local = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });
        Assert.That(EncodeIds(hubLlm), Is.EqualTo(EncodeIds(local)));
        Assert.That(hubLlm.Model, Is.EqualTo("org/tiny"));

        var repo = Path.Combine(_cache, "models--org--tiny");
        Assert.That(File.ReadAllText(Path.Combine(repo, "refs", "main")), Is.EqualTo(Commit));
        var config = new FileInfo(Path.Combine(repo, "snapshots", Commit, "config.json"));
        Assert.That(config.LinkTarget, Is.EqualTo(Path.Combine("..", "..", "blobs", "etag-config")), "a relative symlink, as huggingface_hub makes");
        Assert.That(File.Exists(Path.Combine(repo, "blobs", FakeHub.WeightsEtag)), Is.True);
        Assert.That(Directory.GetFiles(Path.Combine(repo, "blobs"), "*.incomplete"), Is.Empty);

        Assert.That(_hub.Requested.Any(p => p.Contains("pytorch_model.bin") || p.Contains("onnx")), Is.False, "only the files the library reads");
        Assert.That(_hub.SawRateLimit, Is.True, "the 429 was retried");
        Assert.That(_hub.RangeRequests, Is.GreaterThanOrEqualTo(1), "the interrupted download was resumed with Range");
        Assert.That(_hub.HubAuthorizations.Distinct(), Is.EquivalentTo(new[] { "Bearer secret-token" }));
        Assert.That(_hub.StorageAuthorizations, Is.All.Null, "the token is not sent to the storage host");
        Assert.That(reports.Any(r => r.Stage == "download" && r.File == "model.safetensors" && r.BytesDone == r.BytesTotal), Is.True);
        Assert.That(reports.Last().Stage, Is.EqualTo("load"));
    }

    [Test]
    public async Task DownloadAndLoadAreLoggedThroughTheLoggerFactory()
    {
        var logs = new CapturingLoggerFactory();
        using var llm = await Llm.LoadAsync("org/tiny", new LlmOptions { Device = "cpu", LoggerFactory = logs });
        Assert.That(logs.Messages, Has.Some.Contains($"Hub: org/tiny@main is commit {Commit}"));
        Assert.That(logs.Messages, Has.Some.Contains("TokenEmbed backend: cpu, float32"));
        Assert.That(logs.Messages, Has.Some.Matches("Loaded org/tiny \\(BertModel\\) from .* in \\d+ ms"));
    }

    private sealed class CapturingLoggerFactory : Microsoft.Extensions.Logging.ILoggerFactory
    {
        public ConcurrentQueue<string> Messages { get; } = new();
        public void AddProvider(Microsoft.Extensions.Logging.ILoggerProvider provider) { }
        public Microsoft.Extensions.Logging.ILogger CreateLogger(string categoryName) => new Logger(Messages);
        public void Dispose() { }

        private sealed class Logger(ConcurrentQueue<string> messages) : Microsoft.Extensions.Logging.ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(Microsoft.Extensions.Logging.LogLevel logLevel) => true;
            public void Log<TState>(Microsoft.Extensions.Logging.LogLevel logLevel, Microsoft.Extensions.Logging.EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
                messages.Enqueue(formatter(state, exception));
        }
    }

    [Test]
    public async Task OfflineModeUsesTheCacheAndNamesWhatIsMissing()
    {
        (await Llm.LoadAsync("org/tiny", new LlmOptions { Device = "cpu" })).Dispose();
        _hub.Dispose();
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        using var offline = new Llm("org/tiny", new LlmOptions { Device = "cpu" });
        Assert.That(offline.Dimension, Is.GreaterThan(0));
        var e = Assert.Throws<ModelLoadException>(() => new Llm("org/never-downloaded", new LlmOptions { Device = "cpu" }));
        Assert.That(e!.Message, Does.Contain("HF_HUB_OFFLINE").And.Contain("org/never-downloaded"));
    }

    [Test]
    public void ACacheWrittenByHuggingFaceHubIsReadWithoutNetwork()
    {
        // The layout huggingface_hub writes: blobs named by etag, snapshot files as relative symlinks, refs/main.
        var repo = Path.Combine(_cache, "models--py--written");
        var commit = "fedcba9876543210fedcba9876543210fedcba98";
        Directory.CreateDirectory(Path.Combine(repo, "blobs"));
        Directory.CreateDirectory(Path.Combine(repo, "snapshots", commit));
        Directory.CreateDirectory(Path.Combine(repo, "refs"));
        File.WriteAllText(Path.Combine(repo, "refs", "main"), commit);
        foreach (var name in new[] { "config.json", "model.safetensors" })
        {
            File.Copy(Path.Combine(TestPaths.Fixture("goldens", "bert"), name), Path.Combine(repo, "blobs", "blob-" + name));
            File.CreateSymbolicLink(Path.Combine(repo, "snapshots", commit, name), Path.Combine("..", "..", "blobs", "blob-" + name));
        }
        _hub.Dispose();
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        using var llm = new Llm("py/written", new LlmOptions { Device = "cpu" });
        using var local = new Llm(TestPaths.Fixture("goldens", "bert"), new LlmOptions { Device = "cpu" });
        Assert.That(EncodeIds(llm), Is.EqualTo(EncodeIds(local)));
    }

    [TestCase("org/gated", "gated", "HF_TOKEN")]
    [TestCase("org/missing", "not found", "check the name")]
    [TestCase("org/binonly", "safetensors", "pytorch_model.bin")]
    [TestCase("org/evil", "leave the snapshot folder", "../../../escape.json")]
    public void HubErrorsSayWhatToDo(string repo, string first, string second)
    {
        var e = Assert.Throws<ModelLoadException>(() => new Llm(repo, new LlmOptions { Device = "cpu" }));
        Assert.That(e!.Message, Does.Contain(first).And.Contain(second));
    }

    [Test]
    public void AnUnknownRevisionIsNamed()
    {
        var e = Assert.Throws<ModelLoadException>(() => new Llm("org/tiny", new LlmOptions { Device = "cpu", Revision = "v9" }));
        Assert.That(e!.Message, Does.Contain("'v9'").And.Contain("Revision"));
    }

    private sealed class SyncProgress(Action<LoadProgress> report) : IProgress<LoadProgress>
    {
        public void Report(LoadProgress value) => report(value);
    }

    /// <summary>The hub's endpoints this library uses, with huggingface_hub's headers, plus a storage host for LFS blobs.</summary>
    private sealed class FakeHub : IDisposable
    {
        public const string WeightsEtag = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
        private readonly HttpListener _hub;
        private readonly HttpListener _storage;
        private readonly byte[] _config;
        private readonly byte[] _weights;
        private int _configGets;
        private int _weightGets;
        private bool _disposed;

        public FakeHub(string folder)
        {
            _config = File.ReadAllBytes(Path.Combine(folder, "config.json"));
            _weights = File.ReadAllBytes(Path.Combine(folder, "model.safetensors"));
            (_hub, HubUrl) = StartOnFreePort();
            (_storage, StorageUrl) = StartOnFreePort();
            _ = Task.Run(() => Serve(_hub, Hub));
            _ = Task.Run(() => Serve(_storage, Storage));
        }

        public string HubUrl { get; }
        public string StorageUrl { get; }
        public ConcurrentQueue<string> Requested { get; } = new();
        public ConcurrentQueue<string?> HubAuthorizations { get; } = new();
        public ConcurrentQueue<string?> StorageAuthorizations { get; } = new();
        public bool SawRateLimit { get; private set; }
        public int RangeRequests;

        /// <summary>
        /// A listener on a port the OS just reported free. The port is released before HttpListener binds it, so another
        /// socket (or the hub's own listener: the OS can hand out the same port twice in a row) may take it first; then a
        /// new port is tried.
        /// </summary>
        private static (HttpListener Listener, string Url) StartOnFreePort()
        {
            for (var attempt = 1; ; attempt++)
            {
                var l = new TcpListener(IPAddress.Loopback, 0);
                l.Start();
                var url = $"http://127.0.0.1:{((IPEndPoint)l.LocalEndpoint).Port}";
                l.Stop();
                var listener = new HttpListener();
                listener.Prefixes.Add(url + "/");
                try
                {
                    listener.Start();
                    return (listener, url);
                }
                catch (HttpListenerException) when (attempt < 20)
                {
                    listener.Close();
                }
            }
        }

        private static async Task Serve(HttpListener listener, Action<HttpListenerContext> handle)
        {
            while (listener.IsListening)
            {
                HttpListenerContext c;
                try { c = await listener.GetContextAsync(); }
                catch (Exception) { return; }
                try { handle(c); }
                catch (Exception) { try { c.Response.Abort(); } catch (Exception) { } }
            }
        }

        private void Hub(HttpListenerContext c)
        {
            var path = c.Request.Url!.AbsolutePath;
            Requested.Enqueue(c.Request.HttpMethod + " " + path);
            HubAuthorizations.Enqueue(c.Request.Headers["Authorization"]);
            var r = c.Response;
            switch (path)
            {
                case "/api/models/org/tiny/revision/main":
                    Json(r, $"{{\"id\":\"org/tiny\",\"sha\":\"{Commit}\",\"siblings\":[{{\"rfilename\":\"config.json\"}},{{\"rfilename\":\"model.safetensors\"}},{{\"rfilename\":\"pytorch_model.bin\"}},{{\"rfilename\":\"onnx/model.onnx\"}},{{\"rfilename\":\"README.md\"}}]}}");
                    return;
                case "/api/models/org/binonly/revision/main":
                    Json(r, $"{{\"sha\":\"{Commit}\",\"siblings\":[{{\"rfilename\":\"config.json\"}},{{\"rfilename\":\"pytorch_model.bin\"}}]}}");
                    return;
                case "/api/models/org/evil/revision/main":
                    Json(r, $"{{\"sha\":\"{Commit}\",\"siblings\":[{{\"rfilename\":\"config.json\"}},{{\"rfilename\":\"../../../escape.json\"}},{{\"rfilename\":\"model.safetensors\"}}]}}");
                    return;
                case "/api/models/org/gated/revision/main":
                    Error(r, 403, "GatedRepo");
                    return;
                case "/api/models/org/tiny/revision/v9":
                    Error(r, 404, "RevisionNotFound");
                    return;
                case $"/org/tiny/resolve/{Commit}/config.json":
                    r.Headers["ETag"] = "\"etag-config\"";
                    r.Headers["X-Repo-Commit"] = Commit;
                    if (c.Request.HttpMethod == "GET" && Interlocked.Increment(ref _configGets) == 1)
                    {
                        SawRateLimit = true;
                        r.Headers["Retry-After"] = "0";
                        r.StatusCode = 429;
                        r.Close();
                        return;
                    }
                    r.ContentLength64 = _config.Length;
                    if (c.Request.HttpMethod == "GET") r.OutputStream.Write(_config);
                    r.Close();
                    return;
                case $"/org/tiny/resolve/{Commit}/model.safetensors":
                    r.Headers["X-Linked-Etag"] = "\"" + WeightsEtag + "\"";
                    r.Headers["X-Linked-Size"] = _weights.Length.ToString(System.Globalization.CultureInfo.InvariantCulture);
                    r.Headers["X-Repo-Commit"] = Commit;
                    r.Headers["ETag"] = "\"" + WeightsEtag + "\"";
                    r.Redirect(StorageUrl + "/blobs/weights?signature=x");
                    r.Close();
                    return;
                default:
                    if (path.StartsWith("/api/models/", StringComparison.Ordinal)) Error(r, 404, "RepoNotFound");
                    else Error(r, 404, "EntryNotFound");
                    return;
            }
        }

        private void Storage(HttpListenerContext c)
        {
            StorageAuthorizations.Enqueue(c.Request.Headers["Authorization"]);
            var r = c.Response;
            long start = 0;
            if (c.Request.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref RangeRequests);
                start = long.Parse(range[6..].TrimEnd('-'), System.Globalization.CultureInfo.InvariantCulture);
                r.StatusCode = 206;
                r.Headers["Content-Range"] = $"bytes {start}-{_weights.Length - 1}/{_weights.Length}";
            }
            r.ContentLength64 = _weights.Length - start;
            if (Interlocked.Increment(ref _weightGets) == 1)
            {
                // The first transfer breaks half-way.
                r.OutputStream.Write(_weights, 0, _weights.Length / 2);
                r.OutputStream.Flush();
                r.Abort();
                return;
            }
            r.OutputStream.Write(_weights, (int)start, _weights.Length - (int)start);
            r.Close();
        }

        private static void Json(HttpListenerResponse r, string body)
        {
            var bytes = Encoding.UTF8.GetBytes(body);
            r.ContentType = "application/json";
            r.ContentLength64 = bytes.Length;
            r.OutputStream.Write(bytes);
            r.Close();
        }

        private static void Error(HttpListenerResponse r, int status, string code)
        {
            r.StatusCode = status;
            r.Headers["X-Error-Code"] = code;
            r.Close();
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            _hub.Close();
            _storage.Close();
        }
    }
}
