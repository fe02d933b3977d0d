using System.Runtime.InteropServices;
using TokenEmbed.Models;
using TokenEmbed.Pooling;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Engine;

/// <summary>
/// Prompts → token ids → length-sorted batches bounded by a token budget → forward → pooling → outputs in
/// input order. Every batch runs inside its own dispose scope, so memory does not grow with use.
/// </summary>
internal sealed class EncodeEngine
{
    private readonly PoolingModel _model;
    private readonly int _maxBatchTokens;
    private readonly int _maxBatchSize;

    public EncodeEngine(PoolingModel model, LlmOptions options)
    {
        if (options.MaxBatchTokens <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxBatchTokens, "LlmOptions.MaxBatchTokens must be positive.");
        if (options.MaxBatchSize <= 0) throw new ArgumentOutOfRangeException(nameof(options), options.MaxBatchSize, "LlmOptions.MaxBatchSize must be positive.");
        _model = model;
        _maxBatchTokens = options.MaxBatchTokens;
        _maxBatchSize = options.MaxBatchSize;
    }

    /// <summary>Tokenizes, truncates and validates the prompts.</summary>
    public int[][] Tokenize(IReadOnlyList<Prompt> prompts, PoolingParams? p)
    {
        var truncate = p?.TruncatePromptTokens;
        if (truncate is { } tv && (tv == 0 || tv < -1))
            throw new ArgumentOutOfRangeException(nameof(p), tv, "PoolingParams.TruncatePromptTokens must be -1 (the model's maximum) or a positive token count.");
        if (truncate > _model.MaxModelLength)
            throw new ArgumentOutOfRangeException(nameof(p), truncate,
                $"PoolingParams.TruncatePromptTokens ({truncate}) is larger than the model's maximum length ({_model.MaxModelLength}).");
        var keep = truncate == -1 ? _model.MaxModelLength : truncate;

        var result = new int[prompts.Count][];
        for (var i = 0; i < prompts.Count; i++)
        {
            var prompt = prompts[i] ?? throw new ArgumentNullException(nameof(prompts), $"Prompt {i} is null.");
            int[] ids;
            if (prompt.Text is { } text)
            {
                var tok = RequireTokenizer();
                ids = tok.Encode(text, addSpecialTokens: true);
                if (keep is { } k && ids.Length > k)
                {
                    // Left truncation of the content, special tokens kept (HF truncation_side="left").
                    var specials = tok.NumSpecialTokensToAdd;
                    if (k <= specials)
                        throw new ArgumentOutOfRangeException(nameof(p), k,
                            $"PoolingParams.TruncatePromptTokens ({k}) leaves no room for content next to the {specials} special tokens.");
                    var content = tok.Encode(text, addSpecialTokens: false);
                    var tail = content.AsSpan(content.Length - (k - specials)).ToArray();
                    ids = tok.ApplyPostProcessor(tail);
                }
            }
            else
            {
                ids = prompt.TokenIds is int[] arr ? arr : prompt.TokenIds!.ToArray();
                if (keep is { } k && ids.Length > k) ids = ids.AsSpan(ids.Length - k).ToArray();
            }
            // Token-id prompts, and tokenizers whose vocabulary is larger than the model's embedding table.
            foreach (var id in ids)
                if ((uint)id >= (uint)_model.VocabSize)
                    throw new ArgumentOutOfRangeException(nameof(prompts), id,
                        $"Prompt {i} has token id {id}{(prompt.Text != null ? " (from the tokenizer)" : "")}, outside the model's vocabulary [0, {_model.VocabSize}).");
            if (ids.Length == 0) throw new ArgumentException($"Prompt {i} has no tokens.", nameof(prompts));
            if (ids.Length > _model.MaxModelLength) throw new PromptTooLongException(ids.Length, _model.MaxModelLength, i);
            result[i] = ids;
        }
        return result;
    }

    /// <summary>The model's tokenizer, or a clear error when the folder has none.</summary>
    public Tokenization.TextTokenizer RequireTokenizer() => _model.Tokenizer ?? throw new InvalidOperationException(
        "This model folder has no tokenizer (tokenizer.json or vocab.txt), so text prompts cannot be encoded; " +
        "pass token ids with Prompt.FromTokenIds.");

    /// <summary>Runs the model on tokenized prompts and pools them for <paramref name="task"/>.</summary>
    public PoolingOutput[] Run(int[][] ids, PoolingTask task, PoolingParams? p)
    {
        var dim = _model.DimensionFor(task);
        if (p?.Dimensions is { } d && (d <= 0 || d > dim))
            throw new ArgumentOutOfRangeException(nameof(p), d, $"PoolingParams.Dimensions must be between 1 and the model's output size {dim}.");
        if (task is not (PoolingTask.Embed or PoolingTask.TokenEmbed))
            throw new ArgumentOutOfRangeException(nameof(task), task, "Only Embed and TokenEmbed are supported.");
        var normalize = p?.Normalize ?? true;

        var order = Enumerable.Range(0, ids.Length).OrderByDescending(i => ids[i].Length).ToArray();
        var outputs = new PoolingOutput[ids.Length];
        var start = 0;
        while (start < order.Length)
        {
            var longest = ids[order[start]].Length;
            var count = 1;
            while (start + count < order.Length && count < _maxBatchSize && (count + 1L) * longest <= _maxBatchTokens) count++;
            RunBatch(ids, order.AsSpan(start, count).ToArray(), longest, task, p?.Dimensions, normalize, outputs);
            start += count;
        }
        return outputs;
    }

    private void RunBatch(int[][] ids, int[] rows, int t, PoolingTask task, int? dimensions, bool normalize, PoolingOutput[] outputs)
    {
        var b = rows.Length;
        var idData = new long[b * t];
        var maskData = new long[b * t];
        // Padded positions are masked; their id only has to be a valid row of the embedding table.
        var pad = _model.Tokenizer?.PadTokenId is { } p && (uint)p < (uint)_model.VocabSize ? p : 0;
        for (var r = 0; r < b; r++)
        {
            var seq = ids[rows[r]];
            for (var j = 0; j < t; j++)
            {
                idData[r * t + j] = j < seq.Length ? seq[j] : pad;
                maskData[r * t + j] = j < seq.Length ? 1 : 0;
            }
        }

        using var scope = NewDisposeScope();
        using var inference = inference_mode();
        var device = _model.Device;
        var inputIds = tensor(idData, [b, t]).to(device);
        var mask = tensor(maskData, [b, t]).to(device);
        var hidden = _model.Backbone.Forward(inputIds, mask).to(ScalarType.Float32);
        var head = _model.Head;

        Tensor result;
        if (task == PoolingTask.TokenEmbed)
        {
            var tokenHead = _model.TokenEmbedHead ?? head;
            var tokens = tokenHead?.Forward(hidden) ?? hidden;
            result = Poolers.CutAndNormalize(tokens, dimensions, normalize);
        }
        else if (head != null && _model.HeadAfterPooling)
        {
            var pooled = Poolers.Pool(hidden, mask, _model.EmbedPooling);
            result = Poolers.CutAndNormalize(head.Forward(pooled), dimensions, normalize);
        }
        else
        {
            var tokens = head?.Forward(hidden) ?? hidden;
            result = Poolers.CutAndNormalize(Poolers.Pool(tokens, mask, _model.EmbedPooling), dimensions, normalize);
        }

        var host = result.cpu().contiguous();
        var all = MemoryMarshal.Cast<byte, float>(host.bytes);
        var width = (int)host.shape[^1];
        for (var r = 0; r < b; r++)
        {
            var len = ids[rows[r]].Length;
            if (task == PoolingTask.TokenEmbed)
            {
                var skip = _model.TokenEmbedDropsFirstId is { } first && ids[rows[r]][0] == first ? 1 : 0;
                var data = all.Slice((r * t + skip) * width, (len - skip) * width).ToArray();
                outputs[rows[r]] = new PoolingOutput(data, [len - skip, width]);
            }
            else
            {
                outputs[rows[r]] = new PoolingOutput(all.Slice(r * width, width).ToArray(), [width]);
            }
        }
    }
}
