namespace TokenEmbed;

/// <summary>
/// Thrown when a model folder cannot be loaded: a missing or malformed file, a weight that is missing,
/// unexpected or of the wrong shape, or a configuration value that the library cannot honour.
/// </summary>
public sealed class ModelLoadException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">What is wrong, naming the file, tensor or field.</param>
    /// <param name="filePath">The file that was being read, when there is one.</param>
    /// <param name="tensorName">The tensor concerned, when there is one.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public ModelLoadException(string message, string? filePath = null, string? tensorName = null, Exception? innerException = null)
        : base(message, innerException)
    {
        FilePath = filePath;
        TensorName = tensorName;
    }

    /// <summary>The file that was being read, or <see langword="null"/>.</summary>
    public string? FilePath { get; }

    /// <summary>The tensor concerned, or <see langword="null"/>.</summary>
    public string? TensorName { get; }
}
