namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>Sequence</c> pre-tokenizer: each pre-tokenizer splits the words of the previous one.</summary>
internal sealed class SequencePreTokenizer : TextPreTokenizer
{
    private readonly TextPreTokenizer[] _preTokenizers;

    public SequencePreTokenizer(IEnumerable<TextPreTokenizer> preTokenizers) => _preTokenizers = preTokenizers.ToArray();

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words) =>
        PreTokenize(text, words, atInputStart: true);

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words, bool atInputStart)
    {
        if (_preTokenizers.Length == 0)
        {
            if (!text.IsEmpty) words.Add(text);
            return;
        }
        if (_preTokenizers.Length == 1)
        {
            _preTokenizers[0].PreTokenize(text, words, atInputStart);
            return;
        }
        var current = new List<ReadOnlyMemory<char>> { text };
        var next = new List<ReadOnlyMemory<char>>();
        for (int p = 0; p < _preTokenizers.Length; p++)
        {
            var target = p == _preTokenizers.Length - 1 ? words : next;
            _preTokenizers[p].PreTokenizeAll(current, target, atInputStart && current.Count > 0 && StartsTogether(current[0], text));
            if (target == next)
            {
                (current, next) = (next, current);
                next.Clear();
            }
        }
    }

    // Whether a piece begins where the text does: the same position of the same string, or (a rewritten piece,
    // e.g. by Metaspace) any first piece.
    private static bool StartsTogether(ReadOnlyMemory<char> piece, ReadOnlyMemory<char> text)
    {
        if (!System.Runtime.InteropServices.MemoryMarshal.TryGetString(piece, out string? a, out int aStart, out _)
            || !System.Runtime.InteropServices.MemoryMarshal.TryGetString(text, out string? b, out int bStart, out _)
            || !ReferenceEquals(a, b))
            return true;
        return aStart == bStart;
    }
}
