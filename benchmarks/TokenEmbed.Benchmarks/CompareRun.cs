using System.Diagnostics;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// <c>-- compare [rounds] [workload]</c>: issue 14's CPU workloads with the engines interleaved round by round (ONNX Runtime,
/// TokenEmbed on the automatic matmul path, TokenEmbed forced to libtorch's default GEMM), so that the noise of a shared machine
/// hits all of them alike (each round in another order, each run after a short pause); prints medians and the ratios to ONNX
/// Runtime. BenchmarkDotNet's classes measure the same workloads one
/// engine after the other.
/// </summary>
internal static class CompareRun
{
    public static int Run(string[] args)
    {
        var rounds = args.Length > 1 ? int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 15;
        var only = args.Length > 2 ? args[2] : null;
        const int threads = 2;
        using var ort = new OnnxMiniLm(threads);
        using var auto = new Llm(ModelPaths.MiniLm, BenchOptions.For("float32", threads));
        using var mkl = new Llm(ModelPaths.MiniLm, BenchOptions.For("float32-default", threads));
        Console.WriteLine($"auto:    {auto.Backend}");
        Console.WriteLine($"default: {mkl.Backend}");

        // 1: 32 x 128 fixed-length ids.
        var fixedIds = MiniLmTokenIds.Make(32, 128, seed: 1);
        var fixedPrompts = fixedIds.Select(Prompt.FromTokenIds).ToArray();
        var (fi, fm) = MiniLmTokenIds.ToBatch(fixedIds);
        if (only is null || only == "1") Report("1: 32 x 128 token ids", rounds,
            ("ONNX Runtime", () => ort.Run(fi, fm, 32, 128)),
            ("TokenEmbed auto", () => auto.Encode(fixedPrompts, PoolingTask.TokenEmbed)),
            ("TokenEmbed default", () => mkl.Encode(fixedPrompts, PoolingTask.TokenEmbed)));

        // 2: 256 prompts of 8-256 tokens; ORT in input order, batches of 32 padded to their longest.
        var rng = new Random(7);
        var varIds = Enumerable.Range(0, 256).Select(i => MiniLmTokenIds.Make(1, rng.Next(8, 257), seed: 100 + i)[0]).ToArray();
        var varPrompts = varIds.Select(Prompt.FromTokenIds).ToArray();
        var batches = varIds.Chunk(32).Select(c => { var (i, m) = MiniLmTokenIds.ToBatch(c); return (i, m, c.Length, i.Length / c.Length); }).ToArray();
        if (only is null || only == "2") Report("2: 256 prompts of 8-256 tokens", Math.Max(3, rounds / 3),
            ("ONNX Runtime", () => { foreach (var (i, m, r, l) in batches) ort.Run(i, m, r, l); }),
            ("TokenEmbed auto", () => auto.Encode(varPrompts, PoolingTask.TokenEmbed)),
            ("TokenEmbed default", () => mkl.Encode(varPrompts, PoolingTask.TokenEmbed)));

        // 3: one 16-token query, latency.
        var q = MiniLmTokenIds.Make(1, 16, seed: 3);
        var qp = Prompt.FromTokenIds(q[0]);
        var (qi, qm) = MiniLmTokenIds.ToBatch(q);
        if (only is null || only == "3") Report("3: one 16-token query (per call)", rounds * 20,
            ("ONNX Runtime", () => ort.Run(qi, qm, 1, 16)),
            ("TokenEmbed auto", () => auto.Encode(qp, PoolingTask.TokenEmbed)),
            ("TokenEmbed default", () => mkl.Encode(qp, PoolingTask.TokenEmbed)),
            ("bare forward (auto)", BareForward(auto, q[0])));
        if (only is null || only == "3") Console.WriteLine($"  (auto: {auto.Scheduler.Counts.Rounds} rounds, {auto.Scheduler.InlineRounds} inline)");

        // 4: 32 text prompts of about 150 tokens through Encode (tokenization included); ORT gets pre-tokenized ids.
        var words = "late interaction retrieval encodes every token of the query and the document and scores them by maximum similarity".Split(' ');
        var texts = Enumerable.Range(0, 32).Select(i => string.Join(' ', Enumerable.Range(0, 140).Select(j => words[(i * 7 + j * 3) % words.Length]))).ToArray();
        var tokenized = texts.Select(t => auto.Tokenize(t).ToArray()).ToArray();
        var (ti, tm) = MiniLmTokenIds.ToBatch(tokenized);
        var tl = ti.Length / 32;
        if (only is null || only == "4") Report($"4: 32 texts (~{tl} tokens) through Encode", rounds,
            ("ONNX Runtime", () => ort.Run(ti, tm, 32, tl)),
            ("TokenEmbed auto", () => auto.Encode(texts, PoolingTask.TokenEmbed)),
            ("TokenEmbed default", () => mkl.Encode(texts, PoolingTask.TokenEmbed)));
        return 0;
    }

    /// <summary>The backbone's forward alone on the same ids (no scheduler, pooling or copy), to show the engine's overhead.</summary>
    private static Action BareForward(Llm llm, int[] ids)
    {
        var model = (TokenEmbed.Models.PoolingModel)typeof(Llm).GetField("_model", System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Instance)!.GetValue(llm)!;
        var idData = ids.Select(i => (long)i).ToArray();
        var maskData = ids.Select(_ => 1L).ToArray();
        return () =>
        {
            using var scope = TorchSharp.torch.NewDisposeScope();
            using var inference = TorchSharp.torch.inference_mode();
            using var gemm = TokenEmbed.Models.Layers.Gemm.Use(model.Matmul);
            using var threads = TokenEmbed.Engine.CpuForwardThreads.Enter(model.Device, ids.Length);   // as the engine runs it
            var input = new TokenEmbed.Models.ModelInput(TorchSharp.torch.tensor(idData, [1, ids.Length]), TorchSharp.torch.tensor(maskData, [1, ids.Length]));
            model.Backbone.Forward(input);
        };
    }

    private static void Report(string title, int rounds, params (string Name, Action Run)[] engines)
    {
        foreach (var e in engines) { e.Run(); e.Run(); }
        var times = engines.Select(_ => new List<double>()).ToArray();
        // Each round starts with another engine, and every run is preceded by a 20 ms pause: ONNX Runtime's pool threads spin for
        // a while after a run, as libtorch's OpenMP threads do, and that spinning took a core from whichever engine ran next
        // (0.6-0.7 ms of a 5 ms query measured in `-- profile`), which an application running one engine never sees.
        for (var r = 0; r < rounds; r++)
            for (var n = 0; n < engines.Length; n++)
            {
                var i = (r + n) % engines.Length;
                Thread.Sleep(20);
                var sw = Stopwatch.StartNew();
                engines[i].Run();
                times[i].Add(sw.Elapsed.TotalMilliseconds);
            }
        var medians = times.Select(t => Percentile(t, 0.5)).ToArray();
        Console.WriteLine($"## {title} ({rounds} interleaved rounds)");
        for (var i = 0; i < engines.Length; i++)
            Console.WriteLine($"  {engines[i].Name,-20} median {medians[i],9:F3} ms  p99 {Percentile(times[i], 0.99),9:F3} ms  " +
                              $"throughput vs ORT {medians[0] / medians[i]:F2}x");
    }

    private static double Percentile(List<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)Math.Floor(p * (sorted.Length - 1) + 0.5))];
    }
}
