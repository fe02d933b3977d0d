using System.Net;

namespace TokenEmbed.Server;

/// <summary>An error answered as vLLM / OpenAI do: <c>{"error": {"message", "type", "param", "code"}}</c> with an HTTP status.</summary>
internal sealed class ApiError(HttpStatusCode status, string message, string? param = null) : Exception(message)
{
    public HttpStatusCode Status { get; } = status;
    public string? Param { get; } = param;

    /// <summary>The OpenAI error type for the status.</summary>
    public string Type => Status switch
    {
        HttpStatusCode.BadRequest => "BadRequestError",
        HttpStatusCode.Unauthorized => "AuthenticationError",
        HttpStatusCode.NotFound => "NotFoundError",
        HttpStatusCode.RequestEntityTooLarge => "RequestTooLargeError",
        HttpStatusCode.ServiceUnavailable => "ServiceUnavailableError",
        _ => "InternalServerError",
    };

    public static ApiError Bad(string message, string? param = null) => new(HttpStatusCode.BadRequest, message, param);

    /// <summary>The response body.</summary>
    public object Body => new { error = new { message = Message, type = Type, param = Param, code = (int)Status } };

    /// <summary>An exception from the library or the request, as the status and message the client gets.</summary>
    public static ApiError From(Exception e) => e switch
    {
        ApiError api => api,
        ObjectDisposedException => new(HttpStatusCode.ServiceUnavailable, "The server is shutting down."),
        OperationCanceledException => new(HttpStatusCode.ServiceUnavailable, "The request was cancelled."),
        ArgumentException or InvalidOperationException or System.Text.Json.JsonException or FormatException => Bad(e.Message),
        _ => new(HttpStatusCode.InternalServerError, $"Internal error: {e.GetType().Name}: {e.Message}"),
    };
}
