namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>Sequence</c> post-processor: applies its processors in order.</summary>
internal sealed class SequencePostProcessor : PostProcessor
{
    private readonly PostProcessor[] _processors;

    public SequencePostProcessor(IEnumerable<PostProcessor> processors)
    {
        _processors = processors.ToArray();
        NumSpecialTokensToAdd = _processors.Sum(p => p.NumSpecialTokensToAdd);
    }

    public override int NumSpecialTokensToAdd { get; }

    public override int[] Apply(ReadOnlySpan<int> ids)
    {
        if (_processors.Length == 0) return ids.ToArray();
        int[] result = _processors[0].Apply(ids);
        for (int i = 1; i < _processors.Length; i++) result = _processors[i].Apply(result);
        return result;
    }
}
