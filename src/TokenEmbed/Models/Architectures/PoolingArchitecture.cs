using TokenEmbed.Loading;
using TokenEmbed.Pooling;

namespace TokenEmbed.Models.Architectures;

/// <summary>What a head-building step of an architecture may read and record.</summary>
/// <param name="Folder">The model folder (config.json, sentence-transformers layout).</param>
/// <param name="Backbone">The backbone, its weights already loaded.</param>
/// <param name="Weights">The checkpoint (head files may be added to it).</param>
/// <param name="Consumed">Weights read so far; every head weight read must be added (strict loading checks the rest).</param>
internal sealed record HeadContext(ModelFolder Folder, IBackbone Backbone, WeightSet Weights, ISet<string> Consumed);

/// <summary>
/// A config.json <c>architectures</c> name: the backbone it runs on and the pooler (heads and pooling defaults) it builds
/// over it, as one of vLLM's model classes (<c>colbert.py</c>'s <c>ColBERTModel</c>, <c>bge_m3.py</c>, …) does. One class
/// per kind of head; <see cref="ModelRegistry"/> lists the names.
/// </summary>
internal abstract class PoolingArchitecture
{
    /// <param name="name">The name in config.json.</param>
    /// <param name="backbone">The backbone family, or null to take config.json's <c>model_type</c> (HF_ColBERT).</param>
    /// <param name="droppedPrefixes">Whole-checkpoint weight prefixes a pooling model drops (MLM heads, <c>lm_head.</c>).</param>
    protected PoolingArchitecture(string name, BackboneFamily? backbone, IReadOnlyList<string> droppedPrefixes)
    {
        Name = name;
        Backbone = backbone;
        DroppedPrefixes = droppedPrefixes;
    }

    /// <summary>The name in config.json.</summary>
    public string Name { get; }

    /// <summary>The backbone family, or null when config.json's <c>model_type</c> picks it.</summary>
    public BackboneFamily? Backbone { get; }

    /// <summary>Whole-checkpoint weight prefixes a pooling model drops (MLM heads, <c>lm_head.</c>).</summary>
    public IReadOnlyList<string> DroppedPrefixes { get; }

    /// <summary>The backbone family for <paramref name="config"/>.</summary>
    public BackboneFamily BackboneFor(HfConfig config) => (Backbone ?? BackboneFamily.OfModelType(config, Name)).For(config);

    /// <summary>Builds the pooler over the loaded backbone, reading its head weights strictly.</summary>
    public abstract Pooler BuildPooler(HeadContext context);

    /// <summary>Checkpoint weights outside the backbone that this architecture knows and does not use.</summary>
    public virtual bool IsIgnorable(string weightName) => false;

    /// <summary>The same architecture under another name, with more dropped prefixes (the <c>XForCausalLM</c> conversion).</summary>
    public virtual PoolingArchitecture Renamed(string name, IReadOnlyList<string> extraDroppedPrefixes) =>
        new Alias(name, this, [.. DroppedPrefixes, .. extraDroppedPrefixes]);

    /// <summary>The Embed pooling when the folder names none: CLS for encoders, the last token for decoders (vLLM).</summary>
    protected static PoolingMode DefaultPooling(HeadContext c) =>
        c.Folder.Layout?.Pooling ?? (c.Backbone.IsCausal ? PoolingMode.LastToken : PoolingMode.Cls);

    /// <summary>Fails when the folder has Dense modules but the architecture's head is another one.</summary>
    protected static void RejectDenseModules(HeadContext c, string head)
    {
        if (c.Folder.Dense.Count > 0)
            throw new ModelLoadException($"'{c.Folder.Path}' has both {head} and sentence-transformers Dense modules; only one head is supported.", c.Folder.Path);
    }

    /// <summary>Another name for an architecture (vLLM's <c>as_embedding_model</c> suffix rule).</summary>
    private sealed class Alias(string name, PoolingArchitecture inner, IReadOnlyList<string> dropped)
        : PoolingArchitecture(name, inner.Backbone, dropped)
    {
        public override Pooler BuildPooler(HeadContext context) => inner.BuildPooler(context);
        public override bool IsIgnorable(string weightName) => inner.IsIgnorable(weightName);
    }
}
