namespace TokenEmbed.Tokenization;

/// <summary>Hugging Face <c>Sequence</c> pre-tokenizer: each pre-tokenizer splits the words of the previous one.</summary>
internal sealed class SequencePreTokenizer : TextPreTokenizer
{
    private readonly TextPreTokenizer[] _preTokenizers;

    public SequencePreTokenizer(IEnumerable<TextPreTokenizer> preTokenizers) => _preTokenizers = preTokenizers.ToArray();

    public override void PreTokenize(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words)
    {
        if (_preTokenizers.Length == 0)
        {
            if (!text.IsEmpty) words.Add(text);
            return;
        }
        if (_preTokenizers.Length == 1)
        {
            _preTokenizers[0].PreTokenize(text, words);
            return;
        }
        var current = new List<ReadOnlyMemory<char>> { text };
        var next = new List<ReadOnlyMemory<char>>();
        for (int p = 0; p < _preTokenizers.Length; p++)
        {
            var target = p == _preTokenizers.Length - 1 ? words : next;
            foreach (var piece in current) _preTokenizers[p].PreTokenize(piece, target);
            if (target == next)
            {
                (current, next) = (next, current);
                next.Clear();
            }
        }
    }
}
