using TokenEmbed.Loading;

namespace TokenEmbed.Models;

/// <summary>
/// A model folder read once: <c>config.json</c>, the sentence-transformers / PyLate module layout and settings. Weights
/// and the tokenizer are opened by <see cref="PoolingModel.Load(string, LlmOptions)"/>.
/// </summary>
/// <param name="Path">The folder.</param>
/// <param name="Config"><c>config.json</c>.</param>
/// <param name="Layout">The sentence-transformers modules (<c>modules.json</c>, <c>1_Pooling</c>, Dense modules), or null.</param>
/// <param name="PyLate"><c>config_sentence_transformers.json</c> (PyLate settings), or null.</param>
internal sealed record ModelFolder(string Path, HfConfig Config, SentenceTransformersLayout? Layout, PyLateConfig? PyLate)
{
    /// <summary>The folder's Dense modules (empty when there are none).</summary>
    public IReadOnlyList<DenseModuleSpec> Dense => Layout?.Dense ?? [];

    /// <summary>A file of the folder.</summary>
    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Reads the folder's configuration files; a missing folder or a broken file is a <see cref="ModelLoadException"/>.</summary>
    public static ModelFolder Read(string folder)
    {
        if (!Directory.Exists(folder))
            throw new ModelLoadException($"Model folder '{folder}' does not exist (downloading from a hub is not supported yet: pass a local folder).", folder);
        return new ModelFolder(folder, HfConfig.Load(FolderPaths.Inside(folder, "config.json")), SentenceTransformersLayout.Load(folder), PyLateConfig.Load(folder));
    }
}
