using static TorchSharp.torch;

namespace TokenEmbed.Models;

/// <summary>
/// What a backbone's forward takes, as transformers' <c>forward(input_ids, attention_mask, position_ids, inputs_embeds)</c>:
/// right-padded token ids and their mask, and optionally the positions and the input embeddings (for models that splice
/// image embeddings into the text, such as Qwen3-VL). The caller owns the tensors.
/// </summary>
/// <param name="InputIds">Token ids [B, T], int64 (always given: they fix the batch shape, and some models read them).</param>
/// <param name="AttentionMask">[B, T], int64, 1 = token, 0 = padding.</param>
/// <param name="PositionIds">
/// Positions in whatever shape the model needs ([B, T] for 1-D positions, [3, B, T] for multimodal RoPE), int64; null = the
/// model's own default (<c>arange(T)</c>, or RoPE-free models' padding-aware ids).
/// </param>
/// <param name="InputsEmbeds">Input embeddings [B, T, H] in the model's dtype, used in place of the token-embedding lookup; null = look the ids up.</param>
/// <param name="Pixels">The batch's images (pixel rows and grids), for models with a vision tower; null for text.</param>
internal sealed record ModelInput(Tensor InputIds, Tensor AttentionMask, Tensor? PositionIds = null, Tensor? InputsEmbeds = null,
    Qwen3Vl.VisionInput? Pixels = null)
{
    /// <summary>
    /// Visual features to add to the hidden states after the first decoder layers (Qwen3-VL's DeepStack): flat indices into
    /// the [B·T] positions and one [n, H] tensor per layer; null when there is none.
    /// </summary>
    public DeepStackInput? DeepStack { get; init; }

    /// <summary>
    /// Whether every position of every row is attended (no padding, no unattended expansion): an encoder may then skip its
    /// additive key mask (adding zeros changes nothing). False unless the caller knows.
    /// </summary>
    public bool FullyAttended { get; init; }

    /// <summary>The batch size.</summary>
    public long BatchSize => InputIds.shape[0];

    /// <summary>The padded length.</summary>
    public long Length => InputIds.shape[1];

    /// <summary>The input embeddings when given, else the lookup of the ids in <paramref name="table"/>.</summary>
    public Tensor EmbedTokens(Layers.EmbeddingTable table) => InputsEmbeds?.alias() ?? table.forward(InputIds);

    /// <summary>The given 1-D positions [B|1, T], or <c>arange(T)</c> as [1, T].</summary>
    public Tensor PositionsOrArange()
    {
        if (PositionIds is { } p)
        {
            if (p.dim() != 2 || p.shape[1] != Length)
                throw new ArgumentException($"This model takes position ids of shape [B, T] = [{BatchSize}, {Length}]; got [{string.Join(", ", p.shape)}].");
            return p.alias();
        }
        return arange(Layers.Ops.L(0), Layers.Ops.L(Length), Layers.Ops.L(1), ScalarType.Int64, InputIds.device).unsqueeze(0);
    }
}

/// <summary>DeepStack features: <see cref="Features"/>[l] is added at <see cref="Positions"/> (flat [B·T] indices) after decoder layer l.</summary>
internal sealed record DeepStackInput(Tensor Positions, IReadOnlyList<Tensor> Features);
