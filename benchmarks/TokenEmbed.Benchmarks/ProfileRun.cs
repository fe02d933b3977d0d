using System.Diagnostics;
using TokenEmbed.Models.Layers;
using TokenEmbed.Runtime;
using static TorchSharp.torch;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// <c>-- profile [batch] [length] [threads] [rounds] [stages]</c>: where a MiniLM forward's time goes. Stages (interleaved
/// round by round, medians, with the process's minor page faults a run): <c>Llm.Encode</c>, the engine's batch and the bare
/// backbone forward on the real model, the pooler alone, ONNX Runtime's forward, and the forward's parts on random
/// activations of the model's shapes (the 24 GEMMs, each GEMM kind, attention through the library and the kernel alone,
/// LayerNorm + residuals, GELU). <c>stages</c> is a comma-separated list of words: the stages whose names contain them, in that
/// order (the order matters: a stage right after ONNX Runtime shares a core with its spinning pool threads).
/// <c>-- profile ort [batch] [length] [threads] [rounds]</c> prints ONNX Runtime's own per-operator profile.
/// </summary>
internal static class ProfileRun
{
    public static int Run(string[] args)
    {
        if (args.Length > 1 && args[1] == "ort") return Ort(args);
        int Arg(int i, int d) => args.Length > i ? int.Parse(args[i], System.Globalization.CultureInfo.InvariantCulture) : d;
        int b = Arg(1, 32), t = Arg(2, 128), threads = Arg(3, 2), rounds = Arg(4, 10);
        TorchRuntime.EnsureInitialized(null);
        if (!MatmulSelection.Choose(CpuMatmulPath.Auto, CPU, ScalarType.Float32, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance).UseOneDnn)
            throw new InvalidOperationException("oneDNN is not used on this CPU.");
        NativeHeap.KeepTensorMemory();
        set_num_threads(threads);
        using var ort = new OnnxMiniLm(threads);
        var (ids, mask) = MiniLmTokenIds.ToBatch(MiniLmTokenIds.Make(b, t, seed: 1));
        long n = (long)b * t;
        var h = randn(n, 384);
        var g = randn(n, 1536);
        var wqkv = randn(384, 1152).mul(0.05); var bqkv = randn(1152);
        var wo = randn(384, 384).mul(0.05); var bo = randn(384);
        var w1 = randn(384, 1536).mul(0.05); var b1 = randn(1536);
        var w2 = randn(1536, 384).mul(0.05); var b2 = randn(384);
        var lnw = ones(384); var lnb = zeros(384);
        var qkv = randn(b, t, 1152);
        using var ln = nn.LayerNorm(384, 1e-12);
        var gelu = Activations.Find("gelu");

        using var llm = new Llm(ModelPaths.MiniLm, BenchOptions.For("float32", threads));
        var wideOptions = BenchOptions.For("float32", threads);
        wideOptions.MaxBatchTokens = 4096;
        using var wide = new Llm(ModelPaths.MiniLm, wideOptions);
        var model = (TokenEmbed.Models.PoolingModel)typeof(Llm).GetField("_model", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(llm)!;
        var prompts = MiniLmTokenIds.Make(b, t, seed: 1).Select(Prompt.FromTokenIds).ToArray();
        var engine = (TokenEmbed.Engine.EncodeEngine)typeof(TokenEmbed.Engine.Scheduler).GetField("_engine", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(llm.Scheduler)!;
        var idArrays = MiniLmTokenIds.Make(b, t, seed: 1);
        var tokenized = idArrays.Select(a => new TokenEmbed.Engine.TokenizedPrompt(a, [])).ToArray();
        var requests = tokenized.Select(_ => new TokenEmbed.Pooling.PoolingRequest(PoolingTask.TokenEmbed, null, true)).ToArray();
        var hidden = randn(b, t, 384);
        void Chunks(int n)
        {
            using var s = NewDisposeScope();
            using var inf = inference_mode();
            for (var c = 0; c < b; c += n)
            {
                var inp = new TokenEmbed.Models.ModelInput(tensor(ids, [b, t]).narrow(0, c, n), tensor(mask, [b, t]).narrow(0, c, n)) { FullyAttended = true };
                model.Backbone.Forward(inp).Dispose();
            }
        }
        var words = "late interaction retrieval encodes every token of the query and the document and scores them by maximum similarity".Split(' ');
        var texts = Enumerable.Range(0, 32).Select(i => string.Join(' ', Enumerable.Range(0, 140).Select(j => words[(i * 7 + j * 3) % words.Length]))).ToArray();
        (string Name, Action Run)[] stages =
        [
            ("Llm.Encode", () => llm.Encode(prompts, PoolingTask.TokenEmbed)),
            ("Encode, 4096-token batches", () => wide.Encode(prompts, PoolingTask.TokenEmbed)),
            ("bare forward", () => { using var s = NewDisposeScope(); using var inf = inference_mode(); using var team = TokenEmbed.Engine.CpuForwardThreads.Enter(CPU, n, onKernels: true); var inp = new TokenEmbed.Models.ModelInput(tensor(ids, [b, t]), tensor(mask, [b, t])) { FullyAttended = true }; model.Backbone.Forward(inp); }),
            ("engine.RunBatch direct", () => engine.RunBatch(tokenized, requests)),
            ("pooler only", () => { using var s = NewDisposeScope(); using var inf = inference_mode(); model.Pooler.Pool(hidden, tensor(mask, [b, t]), idArrays, requests); }),
            ("32 output arrays", () => { var src = new float[128 * 384]; for (var r = 0; r < b; r++) { var a = src.AsSpan().ToArray(); GC.KeepAlive(a); } }),
            ("chunked forward, 8 sequences", () => Chunks(8)),
            ("chunked forward, 4 sequences", () => Chunks(4)),
            ("chunked forward, 2 halves", () => { using var s = NewDisposeScope(); using var inf = inference_mode(); for (var c = 0; c < 2; c++) { var inp = new TokenEmbed.Models.ModelInput(tensor(ids, [b, t]).narrow(0, c * b / 2, b / 2), tensor(mask, [b, t]).narrow(0, c * b / 2, b / 2)) { FullyAttended = true }; model.Backbone.Forward(inp); } }),
            ("ONNX Runtime forward", () => ort.Run(ids, mask, b, t)),
            ("24 GEMMs", () => { using var s = NewDisposeScope(); using var f = OneDnnMatmul.Enter(); for (var l = 0; l < 6; l++) { bqkv.addmm(h, wqkv); bo.addmm(h, wo); b1.addmm(h, w1); b2.addmm(g, w2); } }),
            ("embeddings (real model)", () => { using var s = NewDisposeScope(); using var inf = inference_mode(); var inp = new TokenEmbed.Models.ModelInput(tensor(ids, [b, t]), tensor(mask, [b, t])) { FullyAttended = true }; Embeddings(model).Forward(inp, null); }),
            ("one layer x6 (real model)", () => { using var s = NewDisposeScope(); using var inf = inference_mode(); var layer = FirstLayer(model); using var x = randn(b, t, 384); for (var l = 0; l < 6; l++) layer.forward(x, null).Dispose(); }),
            ("tokenize 32 texts", () => { foreach (var text in texts) llm.Tokenize(text); }),
            ("100 small adds", () => { using var s = NewDisposeScope(); using var inf = inference_mode(); using var x = randn(16, 384); for (var i = 0; i < 100; i++) x.add(x).Dispose(); }),
            ("100 views", () => { using var s = NewDisposeScope(); using var inf = inference_mode(); using var x = randn(16, 384); for (var i = 0; i < 100; i++) x.view(384, 16).Dispose(); }),
            ("24 linears (library path)", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) { Gemm.Linear(h, wqkv.t(), bqkv); Gemm.Linear(h, wo.t(), bo); Gemm.Linear(h, w1.t(), b1); Gemm.Linear(g, w2.t(), b2); } }),
            ("24 linears on the team", () => { using var s = NewDisposeScope(); using var team = TokenEmbed.Kernels.SpinPool.Enter(threads); for (var l = 0; l < 6; l++) { Gemm.Linear(h, wqkv.t(), bqkv); Gemm.Linear(h, wo.t(), bo, new Epilogue(h, Norm: ln)); Gemm.Linear(h, w1.t(), b1, new Epilogue(Activation: gelu)); Gemm.Linear(g, w2.t(), b2, new Epilogue(h, Norm: ln)); } }),
            ("attention on the team", () => { using var s = NewDisposeScope(); using var team = TokenEmbed.Kernels.SpinPool.Enter(threads); for (var l = 0; l < 6; l++) Attention.FusedQkv(qkv, 12, 32, null); }),
            ("  QKV 384->1152 x6", () => { using var s = NewDisposeScope(); using var f = OneDnnMatmul.Enter(); for (var l = 0; l < 6; l++) bqkv.addmm(h, wqkv); }),
            ("  O 384->384 x6", () => { using var s = NewDisposeScope(); using var f = OneDnnMatmul.Enter(); for (var l = 0; l < 6; l++) bo.addmm(h, wo); }),
            ("  up 384->1536 x6", () => { using var s = NewDisposeScope(); using var f = OneDnnMatmul.Enter(); for (var l = 0; l < 6; l++) b1.addmm(h, w1); }),
            ("  down 1536->384 x6", () => { using var s = NewDisposeScope(); using var f = OneDnnMatmul.Enter(); for (var l = 0; l < 6; l++) b2.addmm(g, w2); }),
            ("  kernel QKV x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) Gemm.Linear(h, wqkv.t(), bqkv); }),
            ("  kernel O x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) Gemm.Linear(h, wo.t(), bo); }),
            ("  kernel O+res+LN x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) Gemm.Linear(h, wo.t(), bo, new Epilogue(h, Norm: ln)); }),
            ("  kernel up x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) Gemm.Linear(h, w1.t(), b1); }),
            ("  kernel up+GELU x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) Gemm.Linear(h, w1.t(), b1, new Epilogue(Activation: gelu)); }),
            ("  kernel down x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) Gemm.Linear(g, w2.t(), b2); }),
            ("  kernel down+res+LN x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) Gemm.Linear(g, w2.t(), b2, new Epilogue(h, Norm: ln)); }),
            ("attention x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) { var q = Attention.SplitHeads(qkv.narrow(-1, 0, 384), 12, 32); var k = Attention.SplitHeads(qkv.narrow(-1, 384, 384), 12, 32); var v = Attention.SplitHeads(qkv.narrow(-1, 768, 384), 12, 32); Attention.MergeHeads(Attention.ScaledDotProduct(q, k, v, null)); } }),
            ("  scores+softmax x6", () => { using var s = NewDisposeScope(); using var f = OneDnnMatmul.Enter(); for (var l = 0; l < 6; l++) { var q = Attention.SplitHeads(qkv.narrow(-1, 0, 384), 12, 32); var k = Attention.SplitHeads(qkv.narrow(-1, 384, 384), 12, 32); q.mul(0.17).matmul(k.transpose(-1, -2)).softmax(-1); } }),
            ("kernel only x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) { var q = Attention.SplitHeads(qkv.narrow(-1, 0, 384), 12, 32); var k = Attention.SplitHeads(qkv.narrow(-1, 384, 384), 12, 32); var v = Attention.SplitHeads(qkv.narrow(-1, 768, 384), 12, 32); TokenEmbed.Kernels.AttentionKernel.Run(q, k, v, null, 0.17f); } }),
            ("kernel 1 thread x6", () => { using var s = NewDisposeScope(); set_num_threads(1); for (var l = 0; l < 6; l++) { var q = Attention.SplitHeads(qkv.narrow(-1, 0, 384), 12, 32); var k = Attention.SplitHeads(qkv.narrow(-1, 384, 384), 12, 32); var v = Attention.SplitHeads(qkv.narrow(-1, 768, 384), 12, 32); TokenEmbed.Kernels.AttentionKernel.Run(q, k, v, null, 0.17f); } set_num_threads(threads); }),
            ("LN+residual x12", () => { using var s = NewDisposeScope(); for (var l = 0; l < 12; l++) nn.functional.layer_norm(h.add(h), [384], lnw, lnb, 1e-12); }),
            ("GELU in place x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) g.gelu_(); }),
            ("GELU x6", () => { using var s = NewDisposeScope(); for (var l = 0; l < 6; l++) nn.functional.gelu(g); }),
        ];
        // An optional sixth argument keeps the stages whose names contain one of its comma-separated words, in that order.
        if (args.Length > 5)
            stages = args[5].Split(',').SelectMany(w => stages.Where(st => st.Name.Contains(w, StringComparison.OrdinalIgnoreCase))).Distinct().ToArray();
        foreach (var st in stages) { st.Run(); st.Run(); }
        var times = stages.Select(_ => new List<double>()).ToArray();
        var faults = new long[stages.Length];
        // TOKENEMBED_PROFILE_PAUSE_MS: an idle pause before every stage run (as `-- compare` makes).
        var pause = int.TryParse(Environment.GetEnvironmentVariable("TOKENEMBED_PROFILE_PAUSE_MS"), out var ms) ? ms : 0;
        using (Gemm.Use(true, kernels: true))
            for (var r = 0; r < rounds; r++)
                for (var i = 0; i < stages.Length; i++)
                {
                    if (pause > 0) Thread.Sleep(pause);
                    var f0 = MinorFaults();
                    var sw = Stopwatch.StartNew();
                    stages[i].Run();
                    times[i].Add(sw.Elapsed.TotalMilliseconds);
                    faults[i] += MinorFaults() - f0;
                }
        {
            using var sc = NewDisposeScope();
            var q = Attention.SplitHeads(qkv.narrow(-1, 0, 384), 12, 32); var k = Attention.SplitHeads(qkv.narrow(-1, 384, 384), 12, 32); var v = Attention.SplitHeads(qkv.narrow(-1, 768, 384), 12, 32);
            var mine = TokenEmbed.Kernels.AttentionKernel.Run(q, k, v, null, (float)(1 / Math.Sqrt(32)));
            var eager = q.mul(1 / Math.Sqrt(32)).matmul(k.transpose(-1, -2)).softmax(-1).matmul(v);
            Console.WriteLine($"kernel vs eager max |diff| {mine.sub(eager).abs().max().item<float>():E2}");
        }
        Console.WriteLine($"attention kernel available: {TokenEmbed.Kernels.AttentionKernel.IsAvailable}, THSTensor_data: {TokenEmbed.Kernels.TensorMemory.IsAvailable}");
        Console.WriteLine($"scheduler: {llm.Scheduler.Counts}, inline rounds {llm.Scheduler.InlineRounds}");
        Console.WriteLine($"## profile {b} x {t}, {threads} threads, {rounds} interleaved rounds (medians)");
        for (var i = 0; i < stages.Length; i++)
            Console.WriteLine($"  {stages[i].Name,-24} {times[i].Order().ElementAt(times[i].Count / 2),9:F2} ms  {faults[i] / rounds,8} minor faults a run");
        return 0;
    }

    /// <summary>
    /// <c>-- profile ort [batch] [length] [threads] [rounds]</c>: ONNX Runtime's own per-node profile of the same forward,
    /// summed by operator type (milliseconds a run), to compare its split of the time with TokenEmbed's.
    /// </summary>
    private static int Ort(string[] args)
    {
        int Arg(int i, int d) => args.Length > i ? int.Parse(args[i], System.Globalization.CultureInfo.InvariantCulture) : d;
        int b = Arg(2, 32), t = Arg(3, 128), threads = Arg(4, 2), rounds = Arg(5, 5);
        var prefix = Path.Combine(Path.GetTempPath(), "tokenembed-ort-profile");
        using var ort = new OnnxMiniLm(threads, prefix);
        var (ids, mask) = MiniLmTokenIds.ToBatch(MiniLmTokenIds.Make(b, t, seed: 1));
        ort.Run(ids, mask, b, t);
        var sw = Stopwatch.StartNew();
        for (var r = 0; r < rounds; r++) ort.Run(ids, mask, b, t);
        var wall = sw.Elapsed.TotalMilliseconds / rounds;
        var file = ort.EndProfiling();
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(file));
        var byOp = new Dictionary<string, double>();
        foreach (var e in doc.RootElement.EnumerateArray())
        {
            if (e.GetProperty("cat").GetString() != "Node" || !e.GetProperty("name").GetString()!.EndsWith("_kernel_time", StringComparison.Ordinal)) continue;
            var op = e.GetProperty("args").GetProperty("op_name").GetString()!;
            byOp[op] = byOp.GetValueOrDefault(op) + e.GetProperty("dur").GetDouble() / 1000.0;
        }
        File.Delete(file);
        Console.WriteLine($"## ONNX Runtime {b} x {t}, {threads} threads: {wall:F1} ms a run (with profiling), by operator ({rounds + 1} runs):");
        foreach (var (op, ms) in byOp.OrderByDescending(kv => kv.Value))
            Console.WriteLine($"  {op,-28} {ms / (rounds + 1),9:F2} ms");
        return 0;
    }

    private static TokenEmbed.Models.Bert.BertEmbeddings Embeddings(TokenEmbed.Models.PoolingModel model) =>
        (TokenEmbed.Models.Bert.BertEmbeddings)model.Backbone.GetType().GetField("embeddings", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(model.Backbone)!;

    private static TokenEmbed.Models.Bert.BertLayer FirstLayer(TokenEmbed.Models.PoolingModel model)
    {
        var encoder = model.Backbone.GetType().GetField("encoder", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(model.Backbone)!;
        var layers = (TorchSharp.Modules.ModuleList<TokenEmbed.Models.Bert.BertLayer>)encoder.GetType().GetField("layer", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(encoder)!;
        return layers[0];
    }

    /// <summary>The process's minor page faults so far (field 10 of /proc/self/stat; 0 where there is none).</summary>
    private static long MinorFaults()
    {
        if (!File.Exists("/proc/self/stat")) return 0;
        var stat = File.ReadAllText("/proc/self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], System.Globalization.CultureInfo.InvariantCulture);
    }
}
