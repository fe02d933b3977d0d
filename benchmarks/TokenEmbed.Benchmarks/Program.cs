using BenchmarkDotNet.Running;

namespace TokenEmbed.Benchmarks;

/// <summary>
/// Runs the benchmarks: <c>dotnet run -c Release --project benchmarks/TokenEmbed.Benchmarks -- --filter '*'</c>; with
/// <c>-- load [seconds]</c>, the server load test (<see cref="ServerLoad"/>); with <c>-- compare</c>, the interleaved CPU
/// workloads (<see cref="CompareRun"/>); with <c>-- index [documents,…] [queries]</c>, the index figures (<see cref="IndexRun"/>).
/// </summary>
public static class Program
{
    /// <summary>Entry point; arguments go to BenchmarkDotNet's switcher.</summary>
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] == "compare") return CompareRun.Run(args);
        if (args.Length > 0 && args[0] == "profile") return ProfileRun.Run(args);
        if (args.Length > 0 && args[0] == "index") return IndexRun.Run(args);
        if (args.Length > 0 && args[0] == "load") return ServerLoad.RunAsync(args).GetAwaiter().GetResult();
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
        return 0;
    }
}
