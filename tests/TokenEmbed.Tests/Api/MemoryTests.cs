using NUnit.Framework;
using TokenEmbed.Tests.Support;
using TorchSharp;

namespace TokenEmbed.Tests.Api;

/// <summary>Tensors are disposed deterministically: repeated use leaves no live tensors behind, Dispose frees the weights.</summary>
[NonParallelizable]
public sealed class MemoryTests
{
    private static string Folder(string golden) => TestPaths.Fixture("goldens", golden);
    private static long Live => DisposeScopeManager.Statistics.ThreadTotalLiveCount;

    [TestCase("bert")]
    [TestCase("qwen3")]
    [TestCase("lfm2")]
    public void RepeatedEncodeAndScoreLeaveNoLiveTensors(string golden)
    {
        using var llm = new Llm(Folder(golden), new LlmOptions { Device = "cpu", MaxBatchTokens = 40 });
        var prompts = Enumerable.Range(0, 9).Select(i => Prompt.FromTokenIds(Enumerable.Range(5, 3 + i * 3).ToArray())).ToArray();
        llm.Encode(prompts, PoolingTask.TokenEmbed);
        llm.Encode(prompts, PoolingTask.Embed);
        llm.Score(prompts[0], prompts);
        var before = Live;
        for (var i = 0; i < 5; i++)
        {
            llm.Encode(prompts, PoolingTask.TokenEmbed, new PoolingParams { Dimensions = 32 });
            llm.Encode(prompts, PoolingTask.Embed, new PoolingParams { Normalize = false });
            var scores = llm.Score(prompts[0], prompts[1..]);
            Assert.That(scores, Has.Count.EqualTo(prompts.Length - 1));
            llm.Score(prompts, prompts, new PoolingParams { Dimensions = 16 });
        }
        Assert.That(Live, Is.EqualTo(before), "live tensors after 10 more Encode calls and 10 Score calls");
    }

    [TestCase("bert")]
    [TestCase("qwen3")]
    [TestCase("lfm2")]
    public void DisposeFreesTheModelTensors(string golden)
    {
        var before = Live;
        var llm = new Llm(Folder(golden), new LlmOptions { Device = "cpu" });
        Assert.That(Live, Is.GreaterThan(before), "the weights are live tensors");
        llm.Encode(Prompt.FromTokenIds([2, 5, 3]), PoolingTask.TokenEmbed);
        llm.Dispose();
        Assert.That(Live, Is.EqualTo(before));
    }

    [Test]
    public void RepeatedImageEncodesLeaveNoLiveTensors()
    {
        using var llm = new Llm(Folder("qwen3_vl"), new LlmOptions { Device = "cpu" });
        var image = ImageInput.FromFile(Path.Combine(Folder("qwen3_vl"), "image2.png"));
        Prompt[] prompts = [Prompt.FromTokenIds([5, 500, 502, 501, 9], [image]), Prompt.FromTokenIds([7, 8, 9])];
        llm.Encode(prompts, PoolingTask.TokenEmbed);
        var before = Live;
        for (var i = 0; i < 5; i++)
        {
            llm.Encode(prompts, PoolingTask.TokenEmbed);
            llm.Score(prompts[1], [prompts[0]]);
        }
        Assert.That(Live, Is.EqualTo(before), "live tensors after 5 image encodes and scores");
    }
}
