using TokenEmbed.Loading;
using TokenEmbed.Models.Layers;
using TorchSharp;
using static TorchSharp.torch;

namespace TokenEmbed.Models;

/// <summary>A transformer body that maps token ids to last hidden states.</summary>
internal interface IBackbone : IDisposable
{
    /// <summary>Hidden size of the returned states.</summary>
    int HiddenSize { get; }

    /// <summary>The number of token ids the embedding table holds.</summary>
    int VocabSize { get; }

    /// <summary>The most tokens one sequence may have (position table limit), or null when unbounded.</summary>
    int? MaxPositions { get; }

    /// <summary>The id padded positions must hold (RoPE-free RoBERTa positions count non-pad ids), or null when any id will do.</summary>
    int? PaddingId => null;

    /// <summary>Whether attention is causal (decoders: the default pooling is LAST, padding must not shift positions).</summary>
    bool IsCausal { get; }

    /// <summary>
    /// Whether the CPU float32 forward runs in TokenEmbed's kernels but for a few small ops (the embedding lookup): then,
    /// where the linear kernel is used (<see cref="Runtime.MatmulPath.LinearKernels"/>), the engine runs it with libtorch on
    /// one thread and the kernels on <see cref="Kernels.SpinPool"/>'s spinning threads, so no OpenMP team competes with them
    /// and no worker has to be woken per kernel.
    /// </summary>
    bool RunsOnKernels => false;

    /// <summary>
    /// Loads every parameter from <paramref name="weights"/> under <paramref name="prefix"/>, strictly (every backbone is a
    /// TorchSharp module whose parameter names are the state-dict names).
    /// </summary>
    void LoadWeights(WeightSet weights, string prefix, ISet<string> consumed) => WeightLoader.Load(AsModule, weights, prefix, consumed);

    /// <summary>Moves parameters to a device and dtype.</summary>
    void To(Device device, ScalarType dtype) => AsModule.to(device, dtype);

    private nn.Module AsModule => this as nn.Module
        ?? throw new InvalidOperationException($"{GetType().Name} implements IBackbone but is not a TorchSharp module.");

    /// <summary>Last hidden states [B, T, H] for a right-padded batch (ids and mask [B, T], optional positions and input embeddings).</summary>
    Tensor Forward(ModelInput input);
}

/// <summary>A backbone with a vision tower: the token ids its prompts use for images, and its patch geometry.</summary>
internal interface IVisionBackbone : IBackbone
{
    /// <summary>The image-pad token (<c>&lt;|image_pad|&gt;</c>), one per merged patch.</summary>
    int ImageTokenId { get; }

    /// <summary>The tokens around an image's pads (<c>&lt;|vision_start|&gt;</c>, <c>&lt;|vision_end|&gt;</c>).</summary>
    (int Start, int End) VisionDelimiterIds { get; }

    /// <summary>(patch size, temporal patch size, spatial merge size), which the image processor must use.</summary>
    (int Patch, int Temporal, int Merge) PatchGeometry { get; }
}

