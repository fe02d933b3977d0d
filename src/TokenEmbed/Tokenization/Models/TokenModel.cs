using TokenEmbed.Loading;
using System.Text.Json;

namespace TokenEmbed.Tokenization;

/// <summary>A Hugging Face tokenization model (WordPiece, BPE, Unigram, …): maps one pre-tokenized word to ids.</summary>
internal abstract class TokenModel
{
    /// <summary>Appends the ids of <paramref name="word"/> (never empty) to <paramref name="ids"/>.</summary>
    public abstract void Tokenize(ReadOnlySpan<char> word, List<int> ids);

    /// <summary>
    /// Appends the ids of each of <paramref name="words"/> (pre-tokenized pieces of <paramref name="text"/>, in order)
    /// to <paramref name="ids"/>. Models may override this to tokenize all the words in one call.
    /// </summary>
    public virtual void TokenizeWords(ReadOnlyMemory<char> text, List<ReadOnlyMemory<char>> words, List<int> ids)
    {
        foreach (var word in words)
        {
            if (!word.IsEmpty) Tokenize(word.Span, ids);
        }
    }

    /// <summary>The id of a vocabulary entry, or null.</summary>
    public abstract int? TokenToId(string token);

    /// <summary>The vocabulary entry of an id, or null.</summary>
    public abstract string? IdToToken(int id);

    /// <summary>The number of vocabulary entries (Hugging Face <c>get_vocab_size</c>).</summary>
    public abstract int Count { get; }

    /// <summary>The largest id in the vocabulary, or -1 when it is empty.</summary>
    public abstract int MaxId { get; }

    /// <summary>Reads the <c>vocab</c> object (token → id) of a model.</summary>
    protected static Dictionary<string, int> ReadVocabulary(JsonComponent json)
    {
        var vocabJson = json.Get("vocab", JsonValueKind.Object) ?? throw json.Invalid($"{json.Path}.vocab is missing");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var p in vocabJson.EnumerateObject())
        {
            if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt32(out int id))
                throw json.Invalid($"{json.Path}.vocab[\"{p.Name}\"] must be an integer id");
            vocab[p.Name] = id;
        }
        return vocab;
    }

    /// <summary>
    /// Id → token over 0..max id (null in holes; of tokens sharing an id, the ordinally first); a negative id throws
    /// <see cref="ModelLoadException"/>.
    /// </summary>
    protected static string?[] BuildIdToToken(Dictionary<string, int> vocab, string filePath)
    {
        int maxId = -1;
        foreach (var id in vocab.Values)
        {
            if (id < 0) throw JsonFile.Error(filePath, $"negative token id {id} in the vocabulary.");
            // Ids index a table: one far above the vocabulary's size would allocate gigabytes for nothing.
            if (id > HfConfig.MaxSize || id >= vocab.Count + (1L << 20))
                throw JsonFile.Error(filePath, $"token id {id} in the vocabulary is implausible for {vocab.Count} tokens.");
            maxId = Math.Max(maxId, id);
        }
        var idToToken = new string?[maxId + 1];
        foreach (var (token, id) in vocab)
        {
            if (idToToken[id] is not { } other || string.CompareOrdinal(token, other) < 0) idToToken[id] = token;
        }
        return idToToken;
    }

    /// <summary>
    /// Builds the model a <c>tokenizer.json</c> <c>model</c> object describes; an unsupported type throws
    /// <see cref="ModelLoadException"/>.
    /// </summary>
    public static TokenModel FromJson(JsonComponent json) => json.Type switch
    {
        "WordPiece" => WordPieceModel.FromWordPieceJson(json),
        "Unigram" => UnigramModel.FromUnigramJson(json),
        "BPE" => BpeModel.FromBpeJson(json),
        _ => throw json.Unsupported("model"),
    };
}
